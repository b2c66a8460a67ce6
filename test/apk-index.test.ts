import {execFileSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeAll, describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {readApkIndex, writeApkIndex} from '../src/apk/apkindex.js';
import {splitGzipMembers} from '../src/apk/gzip-members.js';
import {generateSigningKey, keyringFromPem, loadKeyring, type Keyring} from '../src/apk/keys.js';
import {recordLines} from '../src/apk/package-meta.js';
import {readTar} from '../src/tar/index.js';

const readTarNames = (b: Buffer) => readTar(b, 'sig', {allowMissingEnd: true}).map((e) => e.path);
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true});
});

describe.skipIf(!haveAlpineTestData())('APKINDEX (real vectors)', () => {
  let keyring: Keyring;
  beforeAll(() => {
    keyring = loadKeyring(join(alpineTestData, 'keys'));
  });
  const v316 = () => readFileSync(join(alpineTestData, 'v3.16/main/x86_64/APKINDEX.tar.gz'));

  it('reads and verifies the v3.16 x86_64 index', () => {
    const index = readApkIndex(v316(), 'v3.16', {keyring});
    expect(index.signedBy).toBe('alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub');
    expect(index.description).toBe('v3.16.3-13-g4d933a1fa3');
    expect(index.records.length).toBe(4929);
    expect(index.records.every((r) => r.arch === 'x86_64')).toBe(true);
    const strace = index.records.find((r) => r.name === 'strace')!;
    expect(recordLines(strace)).toEqual([
      'C:Q18y9jy9MgtvQFXTntDQ3if2axAkk=',
      'P:strace',
      'V:5.17-r0',
      'A:x86_64',
      'S:521102',
      'I:1708032',
      'T:Diagnostic, debugging and instructional userspace tracer',
      'U:https://strace.io',
      'L:BSD-3-Clause',
      'o:strace',
      'm:Natanael Copa <ncopa@alpinelinux.org>',
      't:1648836354',
      'c:c826833736655b7ee3cd646b7dd6c7917848d6fe',
      'D:so:libc.musl-x86_64.so.1 so:libdw.so.1',
      'p:cmd:strace-log-merge=5.17-r0 cmd:strace=5.17-r0',
    ]);
    const count = (f: (r: (typeof index.records)[number]) => boolean) => index.records.filter(f).length;
    expect(count((r) => r.depends.length > 0)).toBe(3253);
    expect(count((r) => r.provides.length > 0)).toBe(2024);
    expect(count((r) => r.installIf.length > 0)).toBe(1538);
    expect(count((r) => r.providerPriority !== undefined)).toBe(72);
    // the indexed strace package is the one in the test data
    const pkg = readApk(readFileSync(join(alpineTestData, 'v3.16/main/x86_64/strace-5.17-r0.apk')), 'strace', {
      keyring,
      expectedChecksum: strace.checksum,
    });
    expect(pkg.size).toBe(strace.size);
    // curl-7.83.1-r1 is a valid package, but the index has r4: its identity is not there
    const curl = readApk(readFileSync(join(alpineTestData, 'v3.16/main/x86_64/curl-7.83.1-r1.apk')), 'curl', {keyring});
    expect(index.records.find((r) => r.name === 'curl')!.version).toBe('7.83.1-r4');
    expect(index.records.some((r) => r.checksum === curl.checksum)).toBe(false);
  });

  it('reads the RSA256-signed index (SHA-256 signature)', () => {
    const bytes = readFileSync(join(alpineTestData, 'synthetic-rsa256/APKINDEX.tar.gz'));
    const k = keyringFromPem([['test-rsa256.rsa.pub', readFileSync(join(alpineTestData, 'synthetic-rsa256/test-rsa256.rsa.pub'))]]);
    const index = readApkIndex(bytes, 'rsa256', {keyring: k});
    expect(index.signedBy).toBe('test-rsa256.rsa.pub');
    expect(index.records.map((r) => [r.name, r.version, r.checksum])).toEqual([['alpine-baselayout', '3.2.0-r23', 'Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=']]);
    expect(index.description).toBe('');
    // and the aarch64 package it indexes matches
    const pkg = readApk(readFileSync(join(alpineTestData, 'v3.16/main/aarch64/alpine-baselayout-3.2.0-r23.apk')), 'bl', {
      keyring,
      expectedChecksum: index.records[0]!.checksum,
    });
    expect(pkg.meta.arch).toBe('aarch64');
  });

  it('refuses a flipped byte, a wrong key and a truncated index', () => {
    const bytes = Buffer.from(v316());
    bytes[100_000]! ^= 0x08;
    expect(() => readApkIndex(bytes, 'v3.16', {keyring})).toThrow(/index v3\.16.*(does not verify|damaged|CRC)/);
    const other = generateSigningKey('other', 1, 1024);
    expect(() =>
      readApkIndex(v316(), 'v3.16', {keyring: keyringFromPem([['alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub', other.publicKeyPem]])}),
    ).toThrow('index v3.16: signature by alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub does not verify (content altered or wrong key)');
    expect(() => readApkIndex(v316(), 'v3.16', {keyring: keyringFromPem([[other.name, other.publicKeyPem]])})).toThrow(/not among the trusted keys/);
    // a cut body is found by the signature, checked before the body is inflated
    for (const cut of [500, 667, 30_000, 655_700]) {
      expect(() => readApkIndex(v316().subarray(0, cut), 'v3.16', {keyring})).toThrow(/index v3\.16: .*(truncated|damaged|no APKINDEX|does not verify)/);
    }
  });
});

describe('APKINDEX writing and signing', () => {
  it('writes an index abuild-sign style that reads back, and openssl verifies the signature', () => {
    const key = generateSigningKey('builder', 0x66000000);
    const rec = {
      checksum: 'Q1LLq2qDNrS/qRnhxQ3hsY/sHbQnc=',
      name: 'hello',
      version: '1.0-r0',
      arch: 'x86_64',
      size: 1234,
      installedSize: 4096,
      description: 'hello world',
      url: 'https://example.org',
      license: 'MIT',
      origin: 'hello',
      maintainer: '',
      buildDate: 1700000000,
      commit: '',
      providerPriority: 10,
      depends: ['so:libc.musl-x86_64.so.1', '!goodbye'],
      provides: ['cmd:hello=1.0-r0'],
      installIf: [],
      replaces: [],
      replacesPriority: undefined,
      triggers: [],
      datahash: undefined,
    };
    const bytes = writeApkIndex({records: [rec], description: 'test repo', key, mtime: 1700000000});
    const keyring = keyringFromPem([[key.name, key.publicKeyPem]]);
    const index = readApkIndex(bytes, 'written', {keyring});
    expect(index.records).toEqual([rec]);
    expect(index.description).toBe('test repo');
    // same input → same bytes
    expect(writeApkIndex({records: [rec], description: 'test repo', key, mtime: 1700000000}).equals(bytes)).toBe(true);

    // cross-check with openssl: the signature covers the second gzip member, SHA-1
    const dir = mkdtempSync(join(tmpdir(), 'psy-apk-index-'));
    dirs.push(dir);
    const members = splitGzipMembers(bytes, 'written');
    writeFileSync(join(dir, 'signed'), bytes.subarray(members[1]!.offset));
    writeFileSync(join(dir, 'pub'), key.publicKeyPem);
    execFileSync('tar', ['-xzf', join(dir, 'signed'), '-C', dir]);
    const sigTar = members[0]!.data;
    const sigLen = parseInt(sigTar.subarray(124, 135).toString(), 8);
    writeFileSync(join(dir, 'sig'), sigTar.subarray(512, 512 + sigLen));
    const out = execFileSync('openssl', ['dgst', '-sha1', '-verify', join(dir, 'pub'), '-signature', join(dir, 'sig'), join(dir, 'signed')], {
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('Verified OK');
    expect(readFileSync(join(dir, 'APKINDEX'), 'utf8')).toContain('P:hello\nV:1.0-r0\n');
    // GNU tar lists exactly DESCRIPTION and APKINDEX
    expect(execFileSync('tar', ['-tzf', join(dir, 'signed')], {encoding: 'utf8'})).toBe('DESCRIPTION\nAPKINDEX\n');
  });

  it('signs with SHA-256 (.SIGN.RSA256.) when asked, as abuild-sign --type RSA256', () => {
    const key = generateSigningKey('rsa256', 0x66000001);
    const bytes = writeApkIndex({records: [], description: '', key, mtime: 1, algorithm: 'RSA256'});
    const sigName = readTarNames(splitGzipMembers(bytes, 'x')[0]!.data);
    expect(sigName).toEqual([`.SIGN.RSA256.${key.name}`]);
    expect(readApkIndex(bytes, 'rsa256', {keyring: keyringFromPem([[key.name, key.publicKeyPem]])}).signedBy).toBe(key.name);
  });

  it('refuses a DESCRIPTION apk would ignore', () => {
    expect(() => writeApkIndex({records: [], description: 'x'.repeat(161), key: undefined, mtime: 0})).toThrow(/at most 160 bytes/);
  });
});
