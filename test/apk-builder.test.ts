import {execFileSync} from 'node:child_process';
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {readApkIndex} from '../src/apk/apkindex.js';
import {splitGzipMembers} from '../src/apk/gzip-members.js';
import {installPackages} from '../src/apk/installer.js';
import {generateSigningKey, keyringFromPem} from '../src/apk/keys.js';
import {buildRepository, loadSigningKey, readPackageDeclaration} from '../src/apk/package-builder.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'psy-apk-builder-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true});
});

function declare(root: string, name: string, apkJson: unknown, files: Record<string, string> = {}, scripts: Record<string, string> = {}) {
  const dir = join(root, 'alpine', 'packages', name);
  mkdirSync(dir, {recursive: true});
  writeFileSync(join(dir, 'apk.json'), JSON.stringify(apkJson));
  for (const [p, body] of Object.entries(files)) {
    mkdirSync(join(dir, 'files', p, '..'), {recursive: true});
    writeFileSync(join(dir, 'files', p), body);
    if (body.startsWith('#!')) chmodSync(join(dir, 'files', p), 0o755);
  }
  for (const [s, body] of Object.entries(scripts)) {
    mkdirSync(join(dir, 'scripts'), {recursive: true});
    writeFileSync(join(dir, 'scripts', s), body);
  }
  return dir;
}

describe('package builder (alpine/packages/NAME)', () => {
  it('builds signed packages and a signed index from declarations, reproducibly', () => {
    const root = tempDir();
    const key = generateSigningKey('psyops', 0x66a00000);
    writeFileSync(join(root, 'psyops.rsa'), key.privateKeyPem);
    const loaded = loadSigningKey(join(root, 'psyops.rsa'));
    expect(loaded.name).toBe('psyops.rsa.pub');
    expect(loaded.publicKeyPem).toBe(key.publicKeyPem);
    declare(
      root,
      'psyopsos-base',
      {
        version: '1.2.0-r3',
        description: 'psyopsOS base files',
        license: 'MIT',
        depends: ['busybox', 'so:libc.musl-x86_64.so.1'],
        provides: ['cmd:psyops-hello=1.2.0-r3'],
        dirs: ['var/lib/psyops'],
        symlinks: {'usr/bin/hi': 'psyops-hello'},
        paths: {'usr/bin/psyops-hello': {mode: '4750', gid: 10}, 'var/lib/psyops': {mode: '0700'}},
      },
      {'usr/bin/psyops-hello': '#!/bin/sh\necho hello\n', 'etc/psyops/node.conf': 'x=1\n'},
      {'post-install': '#!/bin/sh\nexit 0\n'},
    );
    declare(root, 'psyopsos-extra', {version: '0.1-r0', arch: 'aarch64'}, {'etc/extra': 'e'});
    const build = () =>
      buildRepository({
        packagesDir: join(root, 'alpine/packages'),
        repoDir: join(root, 'repo'),
        arch: 'x86_64',
        key: loaded,
        sourceDateEpoch: 1700000000,
        description: 'psyopsOS',
      });
    const first = build();
    expect(first.packages.map((p) => p.meta.name)).toEqual(['psyopsos-base']); // aarch64-only one skipped
    const apkPath = join(root, 'repo/x86_64/psyopsos-base-1.2.0-r3.apk');
    const bytes = readFileSync(apkPath);
    const keyring = keyringFromPem([[loaded.name, loaded.publicKeyPem]]);
    const index = readApkIndex(readFileSync(first.indexPath), 'repo', {keyring});
    expect(index.description).toBe('psyopsOS');
    // noarch in the package, the repository's arch in the index (as apk index --rewrite-arch)
    expect(index.records[0]!.arch).toBe('x86_64');
    const pkg = readApk(bytes, 'psyopsos-base', {keyring, expectedChecksum: index.records[0]!.checksum});
    expect(pkg.signedBy).toBe('psyops.rsa.pub');
    expect(pkg.meta).toMatchObject({
      name: 'psyopsos-base',
      version: '1.2.0-r3',
      arch: 'noarch',
      buildDate: 1700000000,
      depends: ['busybox', 'so:libc.musl-x86_64.so.1'],
    });
    expect(pkg.dataEntries.map((e) => `${e.type} ${e.path} ${e.mode.toString(8)} ${e.uid}:${e.gid}`)).toEqual([
      'directory etc/ 755 0:0',
      'directory etc/psyops/ 755 0:0',
      'file etc/psyops/node.conf 644 0:0',
      'directory usr/ 755 0:0',
      'directory usr/bin/ 755 0:0',
      'symlink usr/bin/hi 777 0:0',
      'file usr/bin/psyops-hello 4750 0:10',
      'directory var/ 755 0:0',
      'directory var/lib/ 755 0:0',
      'directory var/lib/psyops/ 700 0:0',
    ]);
    expect(pkg.scripts.get('post-install')?.toString()).toBe('#!/bin/sh\nexit 0\n');

    // GNU tar reads it as one archive, and openssl verifies the abuild-style signature
    const listing = execFileSync('tar', ['-tzf', apkPath], {encoding: 'utf8'}).split('\n');
    expect(listing).toEqual(expect.arrayContaining(['.SIGN.RSA.psyops.rsa.pub', '.PKGINFO', '.post-install', 'usr/bin/psyops-hello']));
    const m = splitGzipMembers(bytes, 'pkg');
    const tmp = tempDir();
    writeFileSync(join(tmp, 'control'), bytes.subarray(m[1]!.offset, m[1]!.offset + m[1]!.length));
    writeFileSync(join(tmp, 'pub'), loaded.publicKeyPem);
    const sigLen = parseInt(m[0]!.data.subarray(124, 135).toString(), 8);
    writeFileSync(join(tmp, 'sig'), m[0]!.data.subarray(512, 512 + sigLen));
    expect(
      execFileSync('openssl', ['dgst', '-sha1', '-verify', join(tmp, 'pub'), '-signature', join(tmp, 'sig'), join(tmp, 'control')], {encoding: 'utf8'}).trim(),
    ).toBe('Verified OK');

    // the same declaration builds to the same bytes
    build();
    expect(readFileSync(apkPath).equals(bytes)).toBe(true);

    // and it installs
    const r = installPackages({
      root: join(tmp, 'root'),
      packages: [pkg],
      world: ['psyopsos-base'],
      repositories: [],
      keys: [[loaded.name, loaded.publicKeyPem]],
      arch: 'x86_64',
      sourceDateEpoch: 1,
    });
    expect(r.manifest.entries.find((e) => e.path === 'usr/bin/psyops-hello')).toMatchObject({mode: 0o4750, gid: 10});
    expect(readFileSync(join(tmp, 'root/etc/apk/keys/psyops.rsa.pub'), 'utf8')).toBe(loaded.publicKeyPem);
    expect(execFileSync('tar', ['-tf', join(tmp, 'root/lib/apk/db/scripts.tar')], {encoding: 'utf8'})).toMatch(
      /^psyopsos-base-1\.2\.0-r3\.Q1\S+=\.post-install\n$/,
    );
  });

  it.each([
    [{}, "'version' is required"],
    [{version: '1.0-rX'}, "'version' '1.0-rX' is not an apk version"],
    [{version: '1', depends: ['foo>']}, "'depends' entry 'foo>' is not a dependency"],
    [{version: '1', colour: 'red'}, "unknown field 'colour'"],
    [{version: '1', paths: {x: {mode: '999'}}}, `paths['x'].mode must be an octal string like "0755"`],
  ])('refuses the declaration %j', (decl, message) => {
    const dir = declare(tempDir(), 'bad', decl);
    expect(() => readPackageDeclaration(dir)).toThrow(`${join(dir, 'apk.json')}: ${message}`);
  });

  it('refuses unknown script names and missing apk.json', () => {
    const dir = declare(tempDir(), 'pkg', {version: '1'}, {}, {'post-instal': 'x'});
    expect(() => readPackageDeclaration(dir)).toThrow('scripts/post-instal is not an apk script name');
    const empty = join(tempDir(), 'nothing');
    mkdirSync(empty);
    expect(() => readPackageDeclaration(empty)).toThrow(`${join(empty, 'apk.json')}: missing (every package folder needs one)`);
  });
});
