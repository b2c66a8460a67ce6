import {createHash} from 'node:crypto';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {gzipMember} from '../src/apk/gzip-members.js';
import {installPackages} from '../src/apk/installer.js';
import {generateSigningKey, keyringFromPem} from '../src/apk/keys.js';
import {emptyMeta, formatPkginfo} from '../src/apk/package-meta.js';
import {signatureMember} from '../src/apk/signature.js';
import {parseTar} from '../src/image/tar.js';
import {readTar, readTarFileMembers, writeTar, type TarWriteEntry} from '../src/tar/index.js';
import {TarUnpacker} from '../src/upgrade/tar.js';

const key = generateSigningKey('fields', 0x65000000, 2048);
const keyring = keyringFromPem([[key.name, key.publicKeyPem]]);
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'psy-tar-fields-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true});
});

/** A correctly signed package whose data tar holds these entries, as written. */
function signedPackage(entries: TarWriteEntry[]): Buffer {
  const dataGz = gzipMember(writeTar(entries));
  const meta = {...emptyMeta('evil', '1.0-r0'), arch: 'x86_64', datahash: createHash('sha256').update(dataGz).digest('hex')};
  const control = gzipMember(
    writeTar([{path: '.PKGINFO', type: 'file', mode: 0o644, mtime: 1, data: Buffer.from(formatPkginfo(meta))}], {endOfArchive: false}),
  );
  return Buffer.concat([signatureMember(control, key, 1), control, dataGz]);
}

const file = (pax: Array<[string, string]>): TarWriteEntry => ({
  path: 'usr/bin/tool',
  type: 'file',
  mode: 0o755,
  mtime: 1,
  data: Buffer.from('#!/bin/sh\n'),
  pax,
});

/** Rewrites a header field of the first header in `tar` and fixes the checksum, so only the field is wrong. */
function patchField(tar: Buffer, off: number, bytes: Buffer | string): Buffer {
  const out = Buffer.from(tar);
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  b.copy(out, off);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : out[i]!;
  if (off !== 148) out.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return out;
}

describe('PAX numeric records are validated, naming package, member and field', () => {
  const bad: Array<[string, string]> = [
    ['uid', 'root'],
    ['gid', '-1'],
    ['mtime', 'yesterday'],
    ['size', '1e3'],
    ['uid', '99999999999999999999'],
    ['gid', '4294967295'],
    ['mtime', '-5'],
    ['uid', ''],
    ['size', '0x10'],
  ];
  for (const [field, value] of bad) {
    it(`refuses PAX ${field}=${JSON.stringify(value)}`, () => {
      const bytes = signedPackage([file([[field, value]])]);
      let err: unknown;
      try {
        readApk(bytes, 'evil.apk', {keyring});
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({name: 'PsyError', code: 'apk-corrupt'});
      expect((err as Error).message).toBe(`package evil.apk: member "usr/bin/tool": bad PAX ${field} ${JSON.stringify(value)}`);
    });
  }

  it('keeps valid PAX numbers, including a fractional mtime, and the installed db carries them', () => {
    const dirs: TarWriteEntry[] = ['usr/', 'usr/bin/'].map((path) => ({path, type: 'directory', mode: 0o755, mtime: 1}));
    const pkg = readApk(
      signedPackage([
        ...dirs,
        file([
          ['uid', '1000'],
          ['gid', '4294967294'],
          ['mtime', '1700000000.123456789'],
        ]),
      ]),
      'ok.apk',
      {keyring},
    );
    const e = pkg.dataEntries.find((x) => x.path === 'usr/bin/tool')!;
    expect([e.uid, e.gid, e.mtime]).toEqual([1000, 4294967294, 1700000000]);
    const root = join(tempDir(), 'root');
    installPackages({root, packages: [pkg], world: ['evil'], repositories: [], keys: [], arch: 'x86_64', sourceDateEpoch: 1});
    const db = readFileSync(join(root, 'lib/apk/db/installed'), 'utf8');
    expect(db).toContain('a:1000:4294967294:755');
    expect(db).not.toMatch(/NaN|:-1/);
  });
});

describe('ustar numeric fields are validated in every reader', () => {
  const plain = writeTar([{path: 'kernel', type: 'file', mode: 0o644, mtime: 1, data: Buffer.from('k')}]);
  const dev = writeTar([{path: 'dev/null', type: 'char', mode: 0o666, mtime: 1, devMajor: 1, devMinor: 3}]);
  const cases: Array<[string, Buffer, string, RegExp]> = [
    ['an octal mode with a 9', patchField(plain, 100, '0000969\0'), 'kernel', /bad tar mode field "0000969"/],
    ['a uid of letters', patchField(plain, 108, 'root\0\0\0\0'), 'kernel', /bad tar uid field "root"/],
    [
      'a negative base-256 gid',
      patchField(plain, 116, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])),
      'kernel',
      /bad tar gid field "negative base-256 number"/,
    ],
    [
      'a base-256 uid over 32 bits',
      patchField(plain, 108, Buffer.from([0x80, 0, 0, 1, 0, 0, 0, 0])),
      'kernel',
      /bad tar uid field "base-256 number too large"/,
    ],
    [
      'a base-256 size over 2^53',
      patchField(plain, 124, Buffer.from([0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])),
      'kernel',
      /bad tar size field "base-256 number too large"/,
    ],
    ['an mtime with a sign', patchField(plain, 136, '-0000000001\0'), 'kernel', /bad tar mtime field "-0000000001"/],
    ['a devmajor of garbage', patchField(dev, 329, 'x\0\0\0\0\0\0\0'), 'dev/null', /bad tar devmajor field "x"/],
    ['a devminor of garbage', patchField(dev, 337, '12 34\0\0\0'), 'dev/null', /bad tar devminor field "12 34"/],
    ['a checksum of garbage', patchField(plain, 148, 'zzzzzz\0 '), 'kernel', /bad tar checksum field "zzzzzz\\u0000 "/],
  ];
  for (const [what, tar, member, field] of cases) {
    it(`refuses ${what}`, async () => {
      const named = new RegExp(`^archive\\.tar: member "${member.replace('/', '\\/')}": ${field.source}`);
      // the in-memory reader (APK, image)
      expect(() => readTar(tar, {what: 'archive.tar', code: 'bad-tar'})).toThrow(named);
      expect(() => parseTar(tar, 'archive.tar', () => {})).toThrow(named);
      // the streaming reader (upgrade), fed one byte at a time
      const dest = tempDir();
      const unpacker = new TarUnpacker(dest, {file: () => true, dir: () => true}, 'archive.tar');
      for (let i = 0; i < tar.length; i++) unpacker.write(tar.subarray(i, i + 1));
      expect(() => unpacker.finish()).toThrow(named);
      // the seeking reader (deaddrop)
      const path = join(dest, 'archive.tar');
      writeFileSync(path, tar);
      await expect(readTarFileMembers(path, [member], {what: 'archive.tar', code: 'bad-artifact'})).rejects.toThrow(named);
    });
  }

  it('refuses a header whose checksum does not add up, and reads the same archive when it does', () => {
    const broken = Buffer.from(plain);
    broken[0] = 'K'.charCodeAt(0);
    expect(() => readTar(broken, 'archive.tar')).toThrow('archive.tar: tar header checksum mismatch at byte 0');
    expect(readTar(plain, 'archive.tar').map((e) => [e.path, e.mode, e.size, e.data.toString()])).toEqual([['kernel', 0o644, 1, 'k']]);
  });

  it('reads base-256 numbers that fit', () => {
    const big = patchField(plain, 136, Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]));
    expect(readTar(big, 'archive.tar')[0]!.mtime).toBe(256);
  });
});
