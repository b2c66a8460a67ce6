import {describe, expect, it} from 'vitest';
import {formatDependency, parseDependency, versionMatches} from '../src/apk/dependency.js';
import {compareVersions, isValidVersion} from '../src/apk/version.js';

// a OP b, as apk-tools orders versions (src/version.c semantics)
const ORDER: ReadonlyArray<readonly [string, '<' | '=' | '>', string]> = [
  // digits
  ['1', '=', '1'],
  ['1', '<', '2'],
  ['2', '<', '10'],
  ['1.0', '=', '1.0'],
  ['1.0', '<', '1.1'],
  ['1.9', '<', '1.10'],
  ['1.2', '<', '1.2.1'],
  ['1.2.1', '>', '1.2'],
  ['1.2.3', '<', '1.2.10'],
  ['2.0', '>', '1.99.99'],
  ['10.0', '>', '9.9'],
  ['01', '=', '1'], // the first number is numeric even with a leading zero
  ['1.0.0', '>', '1.0'],
  ['3.0.0', '<', '3.0.0.1'],
  ['20230424', '<', '20240705'],
  ['1.2.3.4.5.6.7', '<', '1.2.3.4.5.6.8'],
  ['123456789012345678901', '<', '123456789012345678902'],
  // leading zeros after the first number compare as strings (Gentoo rule)
  ['8.2.0', '<', '8.2.001'],
  ['8.2.0015', '<', '8.2.002'],
  ['1.01', '<', '1.1'],
  ['1.001', '<', '1.01'],
  ['1.010', '>', '1.01'],
  ['1.0', '<', '1.00'],
  // letters
  ['1.0a', '>', '1.0'],
  ['1.0a', '<', '1.0b'],
  ['1.0z', '<', '1.1'],
  ['1.0a', '<', '1.0.1'],
  ['1.2a', '>', '1.2_p1'], // letter outranks a later token type
  ['2.3.4z', '>', '2.3.4b'],
  // suffixes: alpha < beta < pre < rc < (none) < cvs < svn < git < hg < p
  ['1.0_alpha', '<', '1.0_beta'],
  ['1.0_beta', '<', '1.0_pre'],
  ['1.0_pre', '<', '1.0_rc'],
  ['1.0_rc', '<', '1.0'],
  ['1.0', '<', '1.0_cvs'],
  ['1.0_cvs', '<', '1.0_svn'],
  ['1.0_svn', '<', '1.0_git'],
  ['1.0_git', '<', '1.0_hg'],
  ['1.0_hg', '<', '1.0_p'],
  ['1.0_alpha1', '<', '1.0_alpha2'],
  ['1.0_alpha2', '<', '1.0_alpha10'],
  ['1.0_alpha', '<', '1.0_alpha1'],
  ['1.0_rc9', '<', '1.0'],
  ['1.1', '>', '1.1_alpha1'],
  ['6.0_pre1', '<', '6.0'],
  ['6.0_p1', '>', '6.0'],
  ['1.0_p1', '<', '1.0_p2'],
  ['1.0_p9', '<', '1.0.1'],
  ['1.0_rc1', '<', '1.0.1_rc1'],
  ['1.0_alpha_beta', '<', '1.0_alpha'], // a pre-release suffix after a suffix lowers further
  ['1.0_p1_p2', '>', '1.0_p1'],
  ['1.2_rc1', '>', '1.1'],
  ['0.8_git20230102', '<', '0.8_git20230103'],
  ['1.2.3_pre2', '<', '1.2.3_rc1'],
  ['9.1_p1', '>', '9.1'],
  ['9.1_p1', '<', '9.2'],
  // revisions
  ['1.0-r0', '=', '1.0-r0'],
  ['1.0-r0', '<', '1.0-r1'],
  ['1.0-r1', '>', '1.0'],
  ['1.0-r9', '<', '1.0-r10'],
  ['1.0-r99', '<', '1.0.1'],
  ['1.0-r99', '<', '1.0a'],
  ['1.0_p1-r0', '>', '1.0-r5'],
  ['1.0_rc1-r5', '<', '1.0-r0'],
  ['7.83.1-r1', '<', '7.83.1-r4'],
  ['1.36.1-r29', '>', '1.36.1-r8'],
  ['3.3.2-r0', '>', '3.3.1-r9'],
  ['2.14.4-r0', '>', '2.14.10-r0'.replace('10', '3')],
  ['2.14.4-r0', '<', '2.14.10-r0'],
  // ~hash (commit hashes between suffix and revision)
  ['1.0~abc', '<', '1.0~abd'],
  ['1.0~abc-r1', '>', '1.0~abc-r0'],
  ['1.0~abc', '>', '1.0'], // a hash is one more token before the end
  ['1.0_git20230101~deadbeef', '>', '1.0_git20230101'.replace('0101', '0100')],
  // real Alpine versions
  ['1.2.5-r0', '>', '1.2.3_git20230424-r0'],
  ['1.2.3', '>', '1.2.3_git20230424'.replace('1.2.3_', '1.2.2_')],
  ['20240705-r0', '>', '20240226-r0'],
  ['3.6.5-r0', '>', '3.2.0-r23'],
  ['5.17-r0', '<', '5.18-r0'],
  ['6.1.192-r2', '>', '6.1.55-r0'],
  ['2.4-r1', '>', '2.4'],
  ['1.3.1-r1', '>', '1.3-r9'],
  ['0.0.1', '<', '0.1'],
  ['0_pre1', '<', '0'],
  // mixed shapes seen in long-lived package histories
  ['1.0_alpha1', '<', '1.0_alpha1-r1'],
  ['1.0b', '<', '1.0b-r1'],
  ['2.3.0b-r1', '<', '2.3.0b-r2'],
  ['0.15.1b', '<', '1.0.1'],
  ['1.6d', '>', '1.2.07.8'],
  ['006', '>', '1.0.0'], // the first number is numeric
  ['013', '<', '014-r1'],
  ['087-r1', '<', '103'],
  ['02.08.01b', '<', '4.77'],
  ['3.0.20060720', '<', '20060720'],
  ['1.07', '<', '1.07.5'],
  ['1.2.12.04', '<', '1.2.12.05'],
  ['2.12r-r4', '<', '2.12r-r5'],
  ['0.59s-r11', '<', '0.65'],
  ['7.0.17', '<', '7.0.174'],
  ['0.9.28.1', '>', '0.9.28'],
  ['22.7.3-r1', '>', '22.7'],
  ['1.3_pre1-r1', '<', '1.3.2'],
  ['1.0_p10-r0', '>', '1.0_p9-r0'],
  ['0.1.0_alpha_pre2', '<', '0.1.0_alpha'],
  ['1.0.0_pre20191002222144-r0', '<', '1.0.0_pre20210530193627-r0'], // beyond 2^53
  ['2.9.11_pre20051101-r3', '>', '2.9.11_pre20051101'],
  ['4.5_p1-r1', '>', '4.5_p1'],
  ['1.8.5', '<', '1.8.5_p2'],
  ['0.20070118', '<', '0.20070207_rc1'],
  ['0.20070207_rc1', '<', '1.0'],
  ['3.9_pre20060124', '>', '0.01'],
  ['2.01.01_alpha10', '>', '0.94'],
  ['1.00_beta2', '<', '1.39'],
  ['104-r11', '>', '104-r9'],
  ['0.7.18-r2', '<', '0.17-r6'],
  ['1.2.9.1-r1', '>', '1.2.9.1'],
  ['23_foo', '>', '4_beta'], // compared token by token until the invalid part
  // invalid versions fall back to string order
  ['1.0', '<', '1.0bc'],
  ['1.0bc', '<', '1.0bd'],
  ['a', '<', 'b'],
];

const VALID = [
  '1',
  '1.0',
  '1.0a',
  '1.0_alpha',
  '1.0_alpha1',
  '1.0_p1',
  '1.0-r0',
  '1.0_rc1-r12',
  '1.0~a1b2',
  '1.0~a1b2-r1',
  '20240705-r0',
  '1.2.3_git20230424-r0',
  '0',
  '1.0_alpha_beta2',
  '3.20.3-r0',
  '1.36.1-r29',
  '0.8_p1_rc2',
];
const INVALID = [
  '',
  '.1',
  'a',
  '1.',
  '1..2',
  '0.1bc',
  '0.1a1',
  '0.1_foobar',
  '0.1-r',
  '0.1-r2_pre1',
  '0.1_-r0',
  '0.1__alpha',
  '0.1_pre2~',
  '0.1_pre2~1234xbcd',
  '1.0-r1-r2',
  '1.0 ',
  ' 1.0',
  '1.0-1',
  '1.0A',
  '1.0_pre1a',
  '1.0~xyz',
  '1.0-r1a',
  'v1.0',
  '1,0',
];

describe('apk version ordering', () => {
  it.each(ORDER)('%s %s %s', (a, op, b) => {
    const expected = op === '<' ? -1 : op === '=' ? 0 : 1;
    expect(Math.sign(compareVersions(a, b)) || 0).toBe(expected);
    expect(Math.sign(compareVersions(b, a)) || 0).toBe(expected === 0 ? 0 : -expected);
  });

  it.each(VALID)('%s is valid', (v) => expect(isValidVersion(v)).toBe(true));
  it.each(INVALID)('"%s" is invalid', (v) => expect(isValidVersion(v)).toBe(false));

  it('orders a shuffled list the same as sorting by hand', () => {
    const sorted = ['1.0_alpha', '1.0_alpha1', '1.0_beta', '1.0_pre', '1.0_rc1', '1.0', '1.0-r1', '1.0_cvs', '1.0_p1', '1.0a', '1.0.1', '1.1'];
    const shuffled = [...sorted].reverse();
    shuffled.sort((a, b) => compareVersions(a, b));
    expect(shuffled).toEqual(sorted);
  });

  it('fuzzy ~ matches by token prefix', () => {
    expect(compareVersions('3.6.9', '3.6', true)).toBe(0);
    expect(compareVersions('3.6_pre1', '3.6', true)).toBe(0);
    expect(compareVersions('3.6', '3.6', true)).toBe(0);
    expect(compareVersions('3.8', '3.8.1', true)).not.toBe(0);
    expect(compareVersions('3.7', '3.6', true)).toBeGreaterThan(0);
  });
});

describe('dependency syntax', () => {
  const CASES: ReadonlyArray<readonly [string, Partial<ReturnType<typeof parseDependency>>]> = [
    ['busybox', {name: 'busybox', op: 'any', conflict: false}],
    ['musl>=1.2.3_git20230424', {name: 'musl', op: '>=', version: '1.2.3_git20230424'}],
    ['alpine-baselayout-data=3.6.5-r0', {name: 'alpine-baselayout-data', op: '=', version: '3.6.5-r0'}],
    ['so:libc.musl-x86_64.so.1', {name: 'so:libc.musl-x86_64.so.1', op: 'any'}],
    ['cmd:curl=7.83.1-r4', {name: 'cmd:curl', op: '=', version: '7.83.1-r4'}],
    ['/bin/sh', {name: '/bin/sh', op: 'any'}],
    ['!openssh-client', {name: 'openssh-client', conflict: true, op: 'any'}],
    ['!openssh-client-default<9', {name: 'openssh-client-default', conflict: true, op: '<', version: '9'}],
    ['pc:libcurl', {name: 'pc:libcurl'}],
    ['py3.11:requests', {name: 'py3.11:requests'}],
    ['foo@edge', {name: 'foo', tag: 'edge', op: 'any'}],
    ['foo@edge>1.0', {name: 'foo', tag: 'edge', op: '>', version: '1.0'}],
    ['foo~1.2', {name: 'foo', op: '~', version: '1.2'}],
    ['foo=~1.2', {name: 'foo', op: '~', version: '1.2'}],
    ['foo<~1.2', {name: 'foo', op: '<~', version: '1.2'}],
    ['foo>~1.2', {name: 'foo', op: '>~', version: '1.2'}],
    ['foo<=2', {name: 'foo', op: '<=', version: '2'}],
    ['foo>2', {name: 'foo', op: '>', version: '2'}],
    ['busybox><Q1yY8lhMF1VhgegJgkcXfqaNabDJw=', {name: 'busybox', op: '><', version: 'Q1yY8lhMF1VhgegJgkcXfqaNabDJw='}],
  ];
  it.each(CASES)('parses %s', (text, want) => {
    const d = parseDependency(text);
    expect(d).toMatchObject(want);
    expect(formatDependency(d)).toBe(text.replace('=~', '~'));
  });

  it('refuses malformed dependencies', () => {
    for (const bad of ['', 'foo>', '>=1.0', 'foo bar', 'foo@', '!']) expect(() => parseDependency(bad, 'world')).toThrow(/world: cannot parse/);
  });

  it('matches versions by operator', () => {
    const m = (dep: string, v: string, q?: string) => versionMatches(parseDependency(dep), v, q);
    expect(m('musl>=1.2.3_git20230424', '1.2.5-r0')).toBe(true);
    expect(m('musl>=1.2.6', '1.2.5-r0')).toBe(false);
    expect(m('a=1.0-r1', '1.0-r1')).toBe(true);
    expect(m('a=1.0', '1.0-r1')).toBe(false);
    expect(m('a<2', '1.9')).toBe(true);
    expect(m('a<2', '2')).toBe(false);
    expect(m('a<=2', '2')).toBe(true);
    expect(m('a>2', '2_p1')).toBe(true);
    expect(m('a>2', '2_rc1')).toBe(false);
    expect(m('a~1.2', '1.2.9-r3')).toBe(true);
    expect(m('a~1.2', '1.3')).toBe(false);
    expect(m('a><Q1abc=', '1', 'Q1abc=')).toBe(true);
    expect(m('a><Q1abc=', '1', 'Q1abd=')).toBe(false);
    expect(m('a', 'anything')).toBe(true);
  });
});
