import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {gunzipSync} from 'node:zlib';
import {readFileSync} from 'node:fs';
import fc from 'fast-check';
import {afterAll, describe, expect, it} from 'vitest';
import {parseTar} from '../src/image/tar.js';
import {encodeHeader, readTar, readTarFileMembers, TarStream, writeTar, type TarEntry, type TarEntryMeta, type TarWriteEntry} from '../src/tar/index.js';
import {TarUnpacker} from '../src/upgrade/tar.js';
import {fixTarChecksums, fuzzParams, HOSTILE_NUMBERS, mutatedBytes, parsesOrRefuses, parsesOrRefusesAsync} from './helpers/fuzz.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

const ctx = {what: 'fuzz.tar', code: 'bad-tar'};
const dir = mkdtempSync(join(tmpdir(), 'psy-fuzz-tar-'));
afterAll(() => rmSync(dir, {recursive: true, force: true}));

const f = (path: string, data: string, extra: Partial<TarWriteEntry> = {}): TarWriteEntry => ({
  path,
  type: 'file',
  mode: 0o644,
  mtime: 1700000000,
  data: Buffer.from(data),
  ...extra,
});

/** GNU long name: an 'L' header whose body is the name, then the member. */
function gnuLongName(name: string): Buffer {
  const body = Buffer.from(name + '\0');
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  const l = encodeHeader({name: '././@LongLink', typeflag: 'L', mode: 0o644, size: body.length, mtime: 0}, {format: 'gnu'});
  const h = encodeHeader({name: name.slice(0, 100), typeflag: '0', mode: 0o644, size: 2, mtime: 5}, {format: 'gnu'});
  return Buffer.concat([l, body, pad, h, Buffer.from('hi'), Buffer.alloc(510), Buffer.alloc(1024)]);
}

const samples: Buffer[] = [
  writeTar([
    f('.PKGINFO', 'pkgname = x\n'),
    f(`usr/share/${'long/'.repeat(30)}file`, 'data', {pax: [['APK-TOOLS.checksum.SHA1', 'a'.repeat(40)]]}),
    {path: 'usr/bin', type: 'directory', mode: 0o755, mtime: 1},
    {path: 'usr/bin/sh', type: 'symlink', mode: 0o777, mtime: 1, linkTarget: '/bin/busybox'},
    {path: 'usr/bin/sh2', type: 'hardlink', mode: 0o777, mtime: 1, linkTarget: '.PKGINFO'},
    {path: 'dev/null', type: 'char', mode: 0o666, mtime: 1, devMajor: 1, devMinor: 3},
  ]),
  writeTar([f('.SIGN.RSA.key.rsa.pub', 'sig', {uname: 'root', gname: 'root'})], {format: 'gnu', endOfArchive: false}),
  writeTar([f('APKINDEX', 'P:x\nV:1\n\n'), f('DESCRIPTION', 'd')], {format: 'gnu', fullWidthNumbers: true}),
  writeTar(
    [
      f(`${'dir/'.repeat(30)}kernel`, 'k', {
        uid: 1000,
        gid: 1000,
        pax: [
          ['mtime', '1700000000.5'],
          ['uid', '1000'],
        ],
      }),
    ],
    {longNames: 'prefix'},
  ),
  gnuLongName(`${'n'.repeat(150)}/kernel.version`),
];
if (haveAlpineTestData()) {
  // the head of a real GNU tar (Alpine's minirootfs)
  samples.push(gunzipSync(readFileSync(join(alpineTestData, 'minirootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz'))).subarray(0, 64 * 1024));
}

const inputs = fc.oneof(
  {weight: 1, arbitrary: fc.uint8Array({maxLength: 2048}).map((u) => Buffer.from(u))},
  {weight: 2, arbitrary: mutatedBytes(samples)},
  {weight: 4, arbitrary: mutatedBytes(samples).map(fixTarChecksums)},
);

/** Every number a reader hands on is a safe non-negative integer. */
function checkNumbers(e: TarEntryMeta): void {
  for (const v of [e.mode, e.uid, e.gid, e.mtime, e.size, e.devMajor, e.devMinor]) {
    expect(Number.isSafeInteger(v) && v >= 0).toBe(true);
  }
}

function streamed(buf: Buffer, cuts: readonly number[]): TarEntry[] {
  const out: TarEntry[] = [];
  const s = new TarStream(
    ctx,
    (meta) => {
      const chunks: Buffer[] = [];
      return {
        data: (c) => void chunks.push(Buffer.from(c)),
        end: () => void out.push({...meta, data: meta.type === 'file' ? Buffer.concat(chunks) : Buffer.alloc(0)}),
      };
    },
    {requireEnd: true},
  );
  let at = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    const to = Math.min(buf.length, c);
    if (to > at) s.write(buf.subarray(at, to));
    at = Math.max(at, to);
  }
  s.write(buf.subarray(at));
  s.end();
  return out;
}

describe('fuzz: tar readers parse or refuse with a PsyError', () => {
  it('in memory and streamed in random pieces, with the same outcome', () => {
    const outcomes = new Set<string>();
    fc.assert(
      fc.property(inputs, fc.array(fc.nat({max: 70_000}), {maxLength: 6}), (buf, cuts) => {
        let whole: TarEntry[] | undefined;
        const a = parsesOrRefuses(() => (whole = readTar(buf, ctx)));
        let pieces: TarEntry[] | undefined;
        const b = parsesOrRefuses(() => (pieces = streamed(buf, cuts)));
        expect(b).toBe(a);
        outcomes.add(a);
        if (whole && pieces) {
          expect(pieces.map((e) => [e.path, e.size, e.data.length])).toEqual(whole.map((e) => [e.path, e.size, e.data.length]));
          whole.forEach(checkNumbers);
        }
        parsesOrRefuses(() => readTar(buf, ctx, {allowMissingEnd: true}));
        parsesOrRefuses(() => parseTar(buf, 'fuzz.tar', (m) => expect(Number.isSafeInteger(m.uid)).toBe(true)));
      }),
      fuzzParams(1000),
    );
    // the mutations reach both sides: some still parse, some are refused
    expect([...outcomes].sort()).toEqual(['parsed', 'refused']);
  });

  it('PAX records with hostile values', () => {
    const key = fc.constantFrom('uid', 'gid', 'mtime', 'size', 'path', 'linkpath', 'uname', 'atime', 'APK-TOOLS.checksum.SHA1', 'GNU.sparse.size');
    const value = fc.oneof(fc.constantFrom(...HOSTILE_NUMBERS), fc.string({maxLength: 30}), fc.bigInt({min: -(2n ** 70n), max: 2n ** 70n}).map(String));
    fc.assert(
      fc.property(fc.array(fc.tuple(key, value), {minLength: 1, maxLength: 4}), (pax) => {
        const tar = writeTar([f('usr/bin/tool', 'data', {pax})]);
        let entries: TarEntry[] = [];
        parsesOrRefuses(() => (entries = readTar(tar, ctx)));
        entries.forEach(checkNumbers);
      }),
      fuzzParams(1000),
    );
  });

  it('the upgrade unpacker and the seeking member reader', async () => {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(inputs, async (buf) => {
        const dest = join(dir, `u${n++}`);
        mkdirSync(dest);
        const unpacker = new TarUnpacker(dest, {file: () => true, dir: () => true}, 'fuzz.tar');
        writeFileSync(join(dir, 'fuzz.tar'), buf);
        parsesOrRefuses(() => {
          unpacker.write(buf);
          return unpacker.finish();
        });
        await parsesOrRefusesAsync(() =>
          readTarFileMembers(join(dir, 'fuzz.tar'), ['kernel.version', 'usr/bin/sh', 'APKINDEX'], {what: 'fuzz.tar', code: 'bad-artifact'}),
        );
      }),
      fuzzParams(300),
    );
  });
});
