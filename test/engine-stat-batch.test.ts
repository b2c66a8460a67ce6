import {spawnSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {joinPaths, STAT_FIELDS, statBatch, statBatchBlob, statCompareBlob} from '../src/engine/stat-batch.js';
import {StatCache} from '../src/engine/file-hasher.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-stat-batch-'));
});
afterEach(() => rmSync(dir, {recursive: true, force: true}));

/** A folder of every kind of path the engine stats, with awkward timestamps. */
function corpus(): string[] {
  const p = (rel: string) => join(dir, rel);
  mkdirSync(p('sub/deeper'), {recursive: true});
  const paths: string[] = [];
  // Many files written back to back: same-second (racy) mtimes.
  for (let i = 0; i < 3000; i++) {
    const f = p(`sub/f${i}.txt`);
    writeFileSync(f, 'x'.repeat(i % 97));
    paths.push(f);
  }
  writeFileSync(p('empty'), '');
  writeFileSync(p('ns'), 'nanoseconds\n');
  // Fractional seconds that need every bit of a double's mantissa, before and after 1970.
  // eslint-disable-next-line no-loss-of-precision -- rounded to the nearest double on purpose
  utimesSync(p('ns'), 1_700_000_000.123456789, 1_700_000_000.987654321);
  writeFileSync(p('old'), 'old\n');
  utimesSync(p('old'), -1.5, -123_456.000_001);
  writeFileSync(p('future'), 'future\n');
  utimesSync(p('future'), 4_102_444_800.999_999, 4_102_444_800.000_001);
  writeFileSync(p('spaced name ü ✓'), 'unicode\n');
  // Exact nanoseconds where a different formula for mtimeMs (e.g. (sec * 1e9 + nsec) / 1e6)
  // rounds differently from Node's sec * 1e3 + nsec / 1e6.
  writeFileSync(p('exact'), 'exact\n');
  expect(spawnSync('touch', ['-m', '-d', '@1775545372.305848208', p('exact')]).status).toBe(0);
  symlinkSync(p('ns'), p('link-to-file'));
  symlinkSync(p('sub'), p('link-to-dir'));
  symlinkSync(p('nowhere'), p('dangling'));
  paths.push(
    p('empty'),
    p('ns'),
    p('exact'),
    p('old'),
    p('future'),
    p('spaced name ü ✓'),
    p('link-to-file'),
    p('link-to-dir'),
    p('dangling'),
    p('sub'),
    p('sub/deeper'),
    p('missing'),
    p('sub/missing/too'),
    dir,
    '/',
  );
  return paths;
}

/** What fs.statSync says, in the batch's layout. */
function expected(paths: readonly string[]): number[] {
  return paths.flatMap((path) => {
    const st = statSync(path, {throwIfNoEntry: false});
    return st === undefined ? [-1, -1, -1, -1, -1] : [st.size, st.mtimeMs, st.ctimeMs, st.ino, st.isFile() ? 1 : 0];
  });
}

/** Element-wise, telling -0 from 0 and comparing every bit of each double. */
function expectSameBits(actual: Float64Array, want: readonly number[]): void {
  expect(actual.length).toBe(want.length);
  const a = Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = Buffer.from(new Float64Array(want).buffer);
  if (!a.equals(b)) {
    const i = [...actual].findIndex((x, k) => !Object.is(x, want[k]));
    expect({index: i, field: i % STAT_FIELDS, value: actual[i]}).toEqual({index: i, field: i % STAT_FIELDS, value: want[i]});
  }
}

describe('statBatch', () => {
  it('gives exactly what fs.statSync gives, bit for bit, from a list and from a blob', () => {
    const paths = corpus();
    const st = statSync(join(dir, 'ns'));
    // The utimes above really left sub-millisecond digits for the comparison to check.
    expect(st.mtimeMs % 1).not.toBe(0);
    const want = expected(paths);
    expectSameBits(statBatch(paths), want);
    expectSameBits(statBatchBlob(joinPaths(paths), paths.length), want);
    // A file that changes is seen changed: nothing is cached between calls.
    writeFileSync(paths[5]!, 'changed!');
    utimesSync(paths[5]!, 1_600_000_000.5, 1_600_000_000.25);
    const again = statBatch(paths);
    expect(again[5 * STAT_FIELDS]).toBe(8);
    expect(again[5 * STAT_FIELDS + 1]).toBe(1_600_000_000_250);
    expect(statBatch([]).length).toBe(0);
  });

  it('finds the first path whose stat differs from the expected one, and still stats every path', () => {
    const paths = corpus();
    const blob = joinPaths(paths);
    const now = statBatch(paths);
    // The snapshot's layout: size, mtimeMs, ctimeMs, ino a path.
    const expected = new Float64Array(paths.length * 4);
    for (let i = 0; i < paths.length; i++) expected.set(now.subarray(i * STAT_FIELDS, i * STAT_FIELDS + 4), i * 4);
    const same = statCompareBlob(blob, paths.length, expected);
    expect(same.firstChange).toBe(-1);
    expectSameBits(same.stats, [...now]);
    // Each field on its own, at the start, in the middle and at the end.
    for (const [i, field] of [
      [0, 0],
      [1777, 1],
      [2999, 2],
      [paths.length - 1, 3],
    ] as const) {
      const changed = expected.slice();
      changed[i * 4 + field] = changed[i * 4 + field]! + 1e-3;
      const got = statCompareBlob(blob, paths.length, changed);
      expect({i, field, firstChange: got.firstChange}).toEqual({i, field, firstChange: i});
      expectSameBits(got.stats, [...now]);
    }
    // A missing file expected missing matches; expected present, it does not.
    const missing = paths.indexOf(join(dir, 'missing'));
    expect(expected[missing * 4]).toBe(-1);
    const present = expected.slice();
    present.fill(5, missing * 4, missing * 4 + 4);
    expect(statCompareBlob(blob, paths.length, present).firstChange).toBe(missing);
  });

  it('an error other than "does not exist" is fs.statSync\'s own error', () => {
    writeFileSync(join(dir, 'file'), 'f');
    const bad = [join(dir, 'file'), join(dir, 'file', 'below')];
    expect(() => statBatch(bad)).toThrow(/^ENOTDIR/);
    expect(() => statCompareBlob(joinPaths(bad), 2, new Float64Array(8).fill(-2))).toThrow(/^ENOTDIR/);
  });

  it('a NUL inside a path is refused as fs.statSync refuses it', () => {
    expect(() => statBatch([join(dir, 'a\0b')])).toThrow(/null bytes/);
  });

  it('a blob with fewer paths than the count is refused', () => {
    expect(() => statBatchBlob(Buffer.from('/tmp\0/etc'), 2)).toThrow(/fewer NUL-terminated paths/);
  });

  it('StatCache.prefetch stats in one batch what get() would stat one by one', () => {
    const paths = corpus();
    const rels = paths.filter((p) => p.startsWith(dir + '/')).map((p) => p.slice(dir.length + 1));
    const lazy = new StatCache(dir);
    const eager = new StatCache(dir);
    eager.prefetch(rels);
    // Everything is cached now: files deleted afterwards still answer as prefetched.
    const want = rels.map((r) => lazy.get(r));
    rmSync(join(dir, 'sub'), {recursive: true});
    const got = rels.map((r) => eager.get(r));
    const plain = (st: ReturnType<StatCache['get']>) =>
      st === undefined ? undefined : {size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, file: st.isFile()};
    expect(got.map(plain)).toEqual(want.map(plain));
    expect(got.filter((st) => st === undefined).length).toBe(3);
  });

  it("StatCache.prefetch leaves a path it cannot stat to get(), which throws statSync's error", () => {
    writeFileSync(join(dir, 'file'), 'f');
    const rels = [...Array.from({length: 100}, (_, i) => `n${i}`), 'file', 'file/below'];
    const cache = new StatCache(dir);
    expect(() => cache.prefetch(rels)).not.toThrow();
    expect(cache.get('file')?.size).toBe(1);
    expect(() => cache.get('file/below')).toThrow(/^ENOTDIR/);
  });
});
