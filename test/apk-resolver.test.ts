import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {beforeAll, describe, expect, it} from 'vitest';
import {readApkIndex, type ApkIndex} from '../src/apk/apkindex.js';
import {loadKeyring} from '../src/apk/keys.js';
import {emptyMeta, type IndexRecord} from '../src/apk/package-meta.js';
import {checkPackageSet, resolve, type ResolverRepository} from '../src/apk/resolver.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

let serial = 0;
function rec(name: string, version: string, fields: Partial<IndexRecord> = {}): IndexRecord {
  serial++;
  return {...emptyMeta(name, version), arch: 'x86_64', checksum: `Q1${name}${version}${serial}=`, size: 1, ...fields};
}
const repo = (records: IndexRecord[], name = 'main', tag?: string): ResolverRepository => ({name, records, tag});
const names = (r: ReturnType<typeof resolve>) => r.map((p) => `${p.record.name}-${p.record.version}`);

describe('resolver (synthetic repositories)', () => {
  it('orders dependencies first and takes the highest version', () => {
    const r = resolve({
      world: ['app'],
      arch: 'x86_64',
      repositories: [repo([rec('app', '1.0', {depends: ['lib>=2']}), rec('lib', '2.0'), rec('lib', '2.1_rc1'), rec('lib', '2.1'), rec('lib', '1.9')])],
    });
    expect(names(r)).toEqual(['lib-2.1', 'app-1.0']);
    expect(r[0]!.requiredBy).toEqual(['app-1.0']);
  });

  it('resolves so: and cmd: provides to the providing package', () => {
    const r = resolve({
      world: ['cmd:tool'],
      arch: 'x86_64',
      repositories: [repo([rec('tool', '3', {provides: ['cmd:tool=3'], depends: ['so:libz.so.1']}), rec('zlib', '1.3-r1', {provides: ['so:libz.so.1=1.3']})])],
    });
    expect(names(r)).toEqual(['zlib-1.3-r1', 'tool-3']);
  });

  it('chooses a virtual package provider by provider_priority', () => {
    const repos = [
      repo([
        rec('kernel', '6', {depends: ['initramfs-generator']}),
        rec('booster', '1', {provides: ['initramfs-generator'], providerPriority: 100}),
        rec('mkinitfs', '3', {provides: ['initramfs-generator'], providerPriority: 900}),
        rec('dracut', '9', {provides: ['initramfs-generator']}),
      ]),
    ];
    expect(names(resolve({world: ['kernel'], arch: 'x86_64', repositories: repos}))).toEqual(['mkinitfs-3', 'kernel-6']);
    // an explicit choice in the world wins
    expect(names(resolve({world: ['booster', 'kernel'], arch: 'x86_64', repositories: repos}))).toEqual(['booster-1', 'kernel-6']);
  });

  it('refuses a virtual package with several providers and no priority', () => {
    const repos = [repo([rec('a', '1', {provides: ['virt']}), rec('b', '1', {provides: ['virt']})])];
    expect(() => resolve({world: ['virt'], arch: 'x86_64', repositories: repos})).toThrow(
      "'virt' (required by world) is a virtual package provided by a, b: add one of them to the world",
    );
  });

  it('does not pick the only provider of a virtual name by itself, as apk', () => {
    const repos = [repo([rec('busybox', '1.35', {provides: ['/bin/sh']}), rec('tool', '1', {depends: ['/bin/sh']})])];
    expect(() => resolve({world: ['tool'], arch: 'x86_64', repositories: repos})).toThrow(
      "'/bin/sh' (required by tool-1) is a virtual package provided by busybox: add one of them to the world",
    );
    // satisfied when the provider is selected for another reason, before or after
    expect(names(resolve({world: ['tool', 'busybox'], arch: 'x86_64', repositories: repos}))).toEqual(['busybox-1.35', 'tool-1']);
    expect(names(resolve({world: ['busybox', 'tool'], arch: 'x86_64', repositories: repos}))).toEqual(['busybox-1.35', 'tool-1']);
  });

  it('lets one package own a versioned name', () => {
    const repos = [
      repo([rec('vim', '8', {provides: ['cmd:ex=8']}), rec('gvim', '8', {provides: ['vim', 'cmd:ex=8']}), rec('nvi', '1', {provides: ['cmd:ex=1']})]),
    ];
    // gvim provides vim: the world needs gvim only
    expect(names(resolve({world: ['vim', 'gvim'], arch: 'x86_64', repositories: repos}))).toEqual(['gvim-8']);
    expect(() => resolve({world: ['vim', 'nvi'], arch: 'x86_64', repositories: repos})).toThrow(
      "nvi-1 (required by world) and vim-8 (required by world) both provide 'cmd:ex'",
    );
  });

  it('install_if sees a package chosen through a virtual name under its own name', () => {
    const repos = [
      repo([
        rec('busybox', '1.36', {provides: ['/bin/sh']}),
        rec('busybox-binsh', '1.36', {provides: ['/bin/sh'], providerPriority: 100, depends: ['busybox=1.36']}),
        rec('app', '1', {depends: ['/bin/sh']}),
        rec('app-sh-completion', '1', {installIf: ['app=1', 'busybox-binsh=1.36']}),
      ]),
    ];
    // apk's changeset order: the install_if package comes right after the last of its
    // conditions to be reached (app counts from when apk starts on it, as in apk)
    expect(names(resolve({world: ['app'], arch: 'x86_64', repositories: repos}))).toEqual([
      'busybox-1.36',
      'busybox-binsh-1.36',
      'app-sh-completion-1',
      'app-1',
    ]);
  });

  it('a versioned provide acts as the name', () => {
    const repos = [repo([rec('musl-utils', '1.2.5-r0', {provides: ['libc-utils=1.2.5-r0']})])];
    expect(names(resolve({world: ['libc-utils'], arch: 'x86_64', repositories: repos}))).toEqual(['musl-utils-1.2.5-r0']);
    expect(() => resolve({world: ['libc-utils>2'], arch: 'x86_64', repositories: repos})).toThrow(
      "cannot resolve 'libc-utils>2' required by world: available versions of 'libc-utils': 1.2.5-r0",
    );
  });

  it('adds install_if packages when all their conditions are installed', () => {
    const repos = [
      repo([
        rec('busybox', '1.36', {}),
        rec('libssl3', '3.3', {}),
        rec('ssl_client', '1.36', {installIf: ['busybox=1.36', 'libssl3']}),
        rec('man', '1', {}),
        rec('busybox-doc', '1.36', {installIf: ['docs', 'busybox=1.36']}),
      ]),
    ];
    expect(names(resolve({world: ['busybox', 'libssl3'], arch: 'x86_64', repositories: repos}))).toEqual(['busybox-1.36', 'libssl3-3.3', 'ssl_client-1.36']);
    expect(names(resolve({world: ['busybox'], arch: 'x86_64', repositories: repos}))).toEqual(['busybox-1.36']);
  });

  it('honours conflicts', () => {
    const repos = [
      repo([rec('doas', '6', {depends: ['!sudo']}), rec('sudo', '1.9'), rec('openssh-client-common', '9', {}), rec('tool', '1', {depends: ['sudo']})]),
    ];
    expect(() => resolve({world: ['doas', 'tool'], arch: 'x86_64', repositories: repos})).toThrow(
      "cannot resolve 'sudo' required by tool-1: it conflicts with doas-6",
    );
    expect(() => resolve({world: ['sudo', 'doas'], arch: 'x86_64', repositories: repos})).toThrow(
      "doas-6 (required by world) conflicts with installed sudo-1.9 ('!sudo')",
    );
    expect(() => resolve({world: ['!sudo', 'tool'], arch: 'x86_64', repositories: repos})).toThrow(/conflicts with world/);
  });

  it('names the missing name and who asked for it', () => {
    const repos = [repo([rec('app', '1', {depends: ['lib']}), rec('lib', '1', {depends: ['so:libmissing.so.2']})])];
    expect(() => resolve({world: ['app'], arch: 'x86_64', repositories: repos})).toThrow(
      "cannot resolve 'so:libmissing.so.2' required by lib-1: no package in the repositories provides 'so:libmissing.so.2'",
    );
    expect(() => resolve({world: ['nope'], arch: 'x86_64', repositories: repos})).toThrow(
      "cannot resolve 'nope' required by world: no package in the repositories provides 'nope'",
    );
  });

  it('uses tagged repositories only when asked for', () => {
    const repos = [repo([rec('app', '1')]), repo([rec('app', '2')], 'edge', 'edge')];
    expect(names(resolve({world: ['app'], arch: 'x86_64', repositories: repos}))).toEqual(['app-1']);
    const r = resolve({world: ['app@edge'], arch: 'x86_64', repositories: repos});
    expect(names(r)).toEqual(['app-2']);
    expect(r[0]!.repository).toBe('edge');
  });

  it('honours repository pins as apk does: the pinned name and what the packages it brings need', () => {
    const basic = repo([rec('a', '2', {depends: ['b']}), rec('b', '2'), rec('c', '2', {depends: ['a>=2']}), rec('same', '10')], 'basic');
    const testing = repo(
      [rec('a', '3', {depends: ['b']}), rec('b', '3'), rec('c', '3', {depends: ['a>=3']}), rec('same', '10'), rec('iif', '3', {installIf: ['a']})],
      'testing',
      'testing',
    );
    const run = (world: string[]) =>
      resolve({world, arch: 'x86_64', repositories: [basic, testing]}).map((p) => `${p.record.name}-${p.record.version}@${p.repository}`);
    // untagged: the tagged repository is not used
    expect(run(['a'])).toEqual(['b-2@basic', 'a-2@basic']);
    // a@testing: a from testing, its dependency b from the untagged one (preferred),
    // and the install_if package only testing has, triggered by a pinned package
    expect(run(['a@testing'])).toEqual(['b-2@basic', 'a-3@testing', 'iif-3@testing']);
    // b pinned too: from testing, even though a (first in the world) asks for it first
    expect(run(['a@testing', 'b@testing'])).toEqual(['b-3@testing', 'a-3@testing', 'iif-3@testing']);
    // c@testing needs a>=3, which only testing has: allowed for c's dependencies
    expect(run(['c@testing'])).toEqual(['b-2@basic', 'a-3@testing', 'iif-3@testing', 'c-3@testing']);
    // same version in both: the pinned repository's
    expect(run(['same@testing'])).toEqual(['same-10@testing']);
    expect(() => run(['c>=3'])).toThrow("cannot resolve 'c>=3' required by world: available versions of 'c': 2");
  });

  it('refuses a world entry whose version is not an apk version, as apk does', () => {
    const repos = [repo([rec('foo', '1')])];
    expect(() => resolve({world: ['foo=invalid'], arch: 'x86_64', repositories: repos})).toThrow(
      "world: 'foo=invalid' is not a valid world dependency ('invalid' is not an apk version)",
    );
    expect(() => resolve({world: ['foo=='], arch: 'x86_64', repositories: repos})).toThrow("'foo==' is not a valid world dependency");
    // index records are not held to it (v3.16 has opensmtpd=6.8.0p2-r4)
    expect(
      names(resolve({world: ['app'], arch: 'x86_64', repositories: [repo([rec('app', '1', {depends: ['foo=1.0p2-r4']}), rec('foo', '1.0p2-r4')])]})),
    ).toEqual(['foo-1.0p2-r4', 'app-1']);
  });

  it('prefers locked identities, and the earlier repository on equal versions', () => {
    const a = rec('app', '1');
    const b = rec('app', '1');
    const newer = rec('app', '2');
    const repos = [repo([a], 'first'), repo([b, newer], 'second')];
    expect(resolve({world: ['app'], arch: 'x86_64', repositories: repos})[0]!.record).toBe(newer);
    expect(resolve({world: ['app=1'], arch: 'x86_64', repositories: repos})[0]!.repository).toBe('first');
    expect(resolve({world: ['app'], arch: 'x86_64', repositories: repos, preferred: new Set([b.checksum])})[0]!.record).toBe(b);
  });

  it('skips packages of other architectures', () => {
    const repos = [repo([rec('app', '2', {arch: 'aarch64'}), rec('app', '1'), rec('data', '1', {arch: 'noarch'})])];
    expect(names(resolve({world: ['app', 'data'], arch: 'x86_64', repositories: repos}))).toEqual(['app-1', 'data-1']);
  });

  it('tolerates dependency cycles', () => {
    const repos = [repo([rec('a', '1', {depends: ['b']}), rec('b', '1', {depends: ['a']})])];
    expect(names(resolve({world: ['a'], arch: 'x86_64', repositories: repos})).sort()).toEqual(['a-1', 'b-1']);
  });
});

describe.skipIf(!haveAlpineTestData())('resolver (real Alpine v3.16 index)', () => {
  let index: ApkIndex;
  beforeAll(() => {
    index = readApkIndex(readFileSync(join(alpineTestData, 'v3.16/main/x86_64/APKINDEX.tar.gz')), 'v3.16', {
      keyring: loadKeyring(join(alpineTestData, 'keys')),
    });
  });
  const main = () => [{name: 'v3.16/main', records: index.records}];

  it('resolves strace to the indexed package and its libraries', () => {
    const r = resolve({world: ['strace'], arch: 'x86_64', repositories: main()});
    const strace = r.find((p) => p.record.name === 'strace')!;
    expect(strace.record.checksum).toBe('Q18y9jy9MgtvQFXTntDQ3if2axAkk=');
    expect(r.at(-1)!.record.name).toBe('strace');
    expect(r.map((p) => p.record.name)).toEqual(expect.arrayContaining(['musl', 'libelf', 'zlib']));
    expect(
      checkPackageSet(
        ['strace'],
        r.map((p) => p.record),
      ),
    ).toEqual([]);
  });

  it('resolves curl to the index version r4, not the stale r1 package', () => {
    const r = resolve({world: ['busybox', 'curl'], arch: 'x86_64', repositories: main()});
    expect(r.find((p) => p.record.name === 'curl')!.record.version).toBe('7.83.1-r4');
    // as apk: /bin/sh is a virtual name (busybox provides it without a priority in 3.16)
    expect(() => resolve({world: ['curl'], arch: 'x86_64', repositories: main()})).toThrow(
      "'/bin/sh' (required by ca-certificates-20220614-r0) is a virtual package provided by busybox: add one of them to the world",
    );
    expect(() => resolve({world: ['busybox', 'curl=7.83.1-r1'], arch: 'x86_64', repositories: main()})).toThrow(
      "cannot resolve 'curl=7.83.1-r1' required by world: available versions of 'curl': 7.83.1-r4",
    );
  });

  it('resolves a sample of the index to complete package sets', () => {
    const failures: string[] = [];
    let resolved = 0;
    index.records.forEach((r, i) => {
      if (i % 40 !== 0) return;
      try {
        const set = resolve({world: ['busybox', r.name], arch: 'x86_64', repositories: main()});
        expect(
          checkPackageSet(
            ['busybox', r.name],
            set.map((p) => p.record),
          ),
        ).toEqual([]);
        resolved++;
      } catch (err) {
        failures.push((err as Error).message);
      }
    });
    expect(resolved).toBeGreaterThan(120);
    // the packages of main that cannot resolve need community (not in this test data),
    // or a virtual name apk would also refuse to pick by itself
    for (const f of failures) expect(f).toMatch(/no package in the repositories provides|is a virtual package provided by/);
  });

  it('resolves a base system with /bin/sh, so: and install_if', () => {
    const r = resolve({world: ['alpine-base', 'openssh'], arch: 'x86_64', repositories: main()});
    const got = new Set(r.map((p) => p.record.name));
    for (const n of ['alpine-baselayout', 'busybox', 'musl', 'openrc', 'openssh-server', 'openssh-client-default']) expect(got.has(n)).toBe(true);
    // every dependency of every selected package is satisfied inside the set
    expect(
      checkPackageSet(
        ['alpine-base', 'openssh'],
        r.map((p) => p.record),
      ),
    ).toEqual([]);
    // and leaving one out is noticed
    const withoutMusl = r.map((p) => p.record).filter((p) => p.name !== 'musl');
    expect(checkPackageSet(['alpine-base'], withoutMusl)).toContain("'so:libc.musl-x86_64.so.1' required by busybox-1.35.0-r17 is not in the set");
  });
});

describe('package set check', () => {
  it('accepts self-provided names and reports conflicts and gaps', () => {
    const a = rec('a', '1', {provides: ['cmd:a=1'], depends: ['cmd:a', 'b>=2', '!c']});
    const b = rec('b', '2');
    const c = rec('c', '1');
    expect(checkPackageSet(['a'], [a, b])).toEqual([]);
    expect(checkPackageSet(['a', 'd'], [a, b, c])).toEqual(["'d' required by world is not in the set", "a-1 conflicts with c-1 ('!c')"]);
    expect(checkPackageSet(['a'], [a, rec('b', '1')])).toEqual(["'b>=2' required by a-1 is not in the set"]);
  });
});
