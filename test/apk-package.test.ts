import {createHash} from 'node:crypto';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import {beforeAll, describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {splitGzipMembers} from '../src/apk/gzip-members.js';
import {generateSigningKey, keyringFromPem, loadKeyring, type Keyring} from '../src/apk/keys.js';
import {parsePkginfo} from '../src/apk/package-meta.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

interface Expected {
  [file: string]: {
    Q1_identity_sha1_of_control_gzip_stream?: string;
    streams: {offset: number; length: number; uncompressed_length: number}[];
    signature_key: string;
    pkginfo?: Record<string, string[]>;
    control_members?: string[];
  };
}

describe.skipIf(!haveAlpineTestData())('APK v2 packages (real Alpine vectors)', () => {
  let expected: Expected;
  let keyring: Keyring;
  beforeAll(() => {
    expected = JSON.parse(readFileSync(join(alpineTestData, 'expected.json'), 'utf8')) as Expected;
    keyring = loadKeyring(join(alpineTestData, 'keys'));
  });
  const pkgs = ['v3.16/main/x86_64/strace-5.17-r0.apk', 'v3.16/main/x86_64/curl-7.83.1-r1.apk', 'v3.16/main/aarch64/alpine-baselayout-3.2.0-r23.apk'];

  for (const file of pkgs) {
    it(`reads and verifies ${file}`, () => {
      const bytes = readFileSync(join(alpineTestData, file));
      const exp = expected[file]!;
      const members = splitGzipMembers(bytes, file);
      expect(members.map((m) => ({offset: m.offset, length: m.length, uncompressed_length: m.data.length}))).toEqual(exp.streams);
      const pkg = readApk(bytes, file, {keyring});
      expect(pkg.checksum).toBe(exp.Q1_identity_sha1_of_control_gzip_stream);
      expect(pkg.signedBy).toBe(exp.signature_key);
      const info = exp.pkginfo!;
      expect(pkg.meta.name).toBe(info['pkgname']![0]);
      expect(pkg.meta.version).toBe(info['pkgver']![0]);
      expect(pkg.meta.depends).toEqual(info['depend']);
      expect(pkg.meta.provides).toEqual(info['provides']);
      expect(pkg.meta.datahash).toBe(info['datahash']![0]);
      expect(pkg.meta.buildDate).toBe(Number(info['builddate']![0]));
      const scripts = exp.control_members!.filter((m) => m !== '.PKGINFO').map((m) => m.slice(1));
      expect([...pkg.scripts.keys()].sort()).toEqual(scripts.sort());
    });
  }

  it('lists strace data with PAX SHA-1 checksums that match content and symlink targets', () => {
    const pkg = readApk(readFileSync(join(alpineTestData, pkgs[0]!)), 'strace', {keyring});
    const bin = pkg.dataEntries.find((e) => e.path === 'usr/bin/strace');
    expect(bin?.type).toBe('file');
    expect(bin?.mode).toBe(0o755);
    expect(bin?.pax['APK-TOOLS.checksum.SHA1']).toMatch(/^[0-9a-f]{40}$/);
    for (const e of pkg.dataEntries.filter((x) => x.type === 'file')) {
      expect(e.pax['APK-TOOLS.checksum.SHA1']).toBe(createHash('sha1').update(e.data).digest('hex'));
    }
    expect(pkg.dataEntries.some((e) => e.path === 'usr/' && e.type === 'directory')).toBe(true);
  });

  it('reads the aarch64 baselayout: scripts, symlinks, special modes', () => {
    const pkg = readApk(readFileSync(join(alpineTestData, pkgs[2]!)), 'baselayout', {keyring});
    expect(pkg.scripts.get('pre-install')?.toString()).toContain('addgroup');
    const tmp = pkg.dataEntries.find((e) => e.path === 'tmp/');
    expect(tmp?.mode).toBe(0o1777);
    const run = pkg.dataEntries.find((e) => e.path === 'var/run');
    expect(run).toMatchObject({type: 'symlink', linkTarget: '/run'});
    // apk hashes the link target string for symlinks
    expect(run?.pax['APK-TOOLS.checksum.SHA1']).toBe(createHash('sha1').update('/run').digest('hex'));
  });

  it('refuses a flipped byte in the control member with a signature error', () => {
    const bytes = Buffer.from(readFileSync(join(alpineTestData, pkgs[0]!)));
    // Flip a byte inside the compressed control member (offset 666..1261): either the
    // deflate stream or its CRC breaks, or the signature does; all must be refused.
    bytes[900]! ^= 0x01;
    expect(() => readApk(bytes, 'strace', {keyring})).toThrow(/strace.*(signature|damaged|CRC)/);
  });

  it('refuses a flipped byte in the data member', () => {
    const bytes = Buffer.from(readFileSync(join(alpineTestData, pkgs[0]!)));
    bytes[bytes.length - 20]! ^= 0x40;
    expect(() => readApk(bytes, 'strace', {keyring})).toThrow(/strace.*(datahash|damaged|CRC)/);
  });

  it('refuses a package signed by a key that is not trusted', () => {
    const other = generateSigningKey('someone-else', 0x60000000, 1024);
    const onlyOther = keyringFromPem([[other.name, other.publicKeyPem]], 'test keys');
    const bytes = readFileSync(join(alpineTestData, pkgs[0]!));
    expect(() => readApk(bytes, 'strace', {keyring: onlyOther})).toThrow(
      /signed by alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub, which is not among the trusted keys/,
    );
  });

  it('refuses a wrong key under the right name', () => {
    const other = generateSigningKey('x', 1, 1024);
    const fake = keyringFromPem([['alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub', other.publicKeyPem]]);
    const bytes = readFileSync(join(alpineTestData, pkgs[0]!));
    expect(() => readApk(bytes, 'strace', {keyring: fake})).toThrow(/does not verify/);
  });

  it('refuses truncated files', () => {
    const bytes = readFileSync(join(alpineTestData, pkgs[0]!));
    for (const cut of [10, 700, 1261, 5000, bytes.length - 3]) {
      expect(() => readApk(bytes.subarray(0, cut), 'strace', {keyring})).toThrow(/strace.*(truncated|damaged|no data)/);
    }
  });

  it('refuses a package whose identity differs from what the index says', () => {
    const bytes = readFileSync(join(alpineTestData, pkgs[1]!));
    expect(() => readApk(bytes, 'curl', {keyring, expectedChecksum: 'Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA='})).toThrow(/does not match the index/);
  });
});

describe('.PKGINFO', () => {
  it('reads empty values as apk does (melange writes `url = `)', () => {
    const m = parsePkginfo('pkgname = tool\npkgver = 1.0-r0\npkgdesc = \nurl = \nlicense =\nsize = 4096\n', 'tool.apk');
    expect(m).toMatchObject({name: 'tool', version: '1.0-r0', description: '', url: '', license: '', installedSize: 4096});
  });

  it('still refuses a line that is not `key = value`', () => {
    expect(() => parsePkginfo('pkgname = tool\npkgver = 1.0-r0\ngarbage here\n', 'tool.apk')).toThrow("tool.apk: .PKGINFO line without ' = ': garbage here");
  });
});
