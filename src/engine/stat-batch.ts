/**
 * stat(2) of many paths at once, for checks that stat thousands of files (the no-op
 * snapshot, the config manifest, the stat cache). The native addon (native/stat-batch.c)
 * takes all paths in one call and splits the work over a few threads; without it (not
 * built, or PSY_STAT_BATCH=js) the same answers come from fs.statSync one path at a time.
 *
 * The answers are five numbers a path in a Float64Array: size, mtimeMs, ctimeMs, ino and
 * 1 for a regular file (0 otherwise); -1 in all five for a path that does not exist.
 * They equal fs.statSync's fields bit for bit, so stats from either side compare.
 */
import {statSync} from 'node:fs';
import {fileURLToPath} from 'node:url';

/** Numbers per path in a batch's answer. */
export const STAT_FIELDS = 5;
/** The native side's mark for an error other than "does not exist". */
const OTHER_ERROR = -2;

interface Addon {
  /** Returns [first path with another error, first path that differs from expected] (-1: none). */
  statBatch(blob: Uint8Array, count: number, out: Float64Array, threads: number, expected?: Float64Array, base?: string): [number, number];
}

export type StatBatchImpl = 'native' | 'js';

let addon: Addon | null | undefined;
let loadError: string | undefined;

function loadAddon(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env['PSY_STAT_BATCH'] === 'js') {
    loadError = 'disabled by PSY_STAT_BATCH=js';
    return addon;
  }
  try {
    const mod = {exports: {} as Partial<Addon>};
    process.dlopen(mod, fileURLToPath(new URL('../../native/build/Release/stat_batch.node', import.meta.url)));
    if (typeof mod.exports.statBatch === 'function') addon = mod.exports as Addon;
    else loadError = 'the addon has no statBatch';
  } catch (err) {
    loadError = err instanceof Error ? err.message.split('\n')[0] : String(err);
  }
  return addon;
}

/** Which implementation answers, and why not the native one. */
export function statBatchImpl(): {readonly impl: StatBatchImpl; readonly reason?: string} {
  return loadAddon() === null ? {impl: 'js', ...(loadError === undefined ? {} : {reason: loadError})} : {impl: 'native'};
}

/**
 * Stats of `count` NUL-terminated paths in `blob` (every path ends with a NUL byte).
 * `impl` forces one implementation (tests compare them).
 */
export function statBatchBlob(blob: Uint8Array, count: number, impl?: StatBatchImpl, base?: string): Float64Array {
  return run(blob, count, impl, undefined, base).stats;
}

/**
 * statBatchBlob, and the first path whose (size, mtimeMs, ctimeMs, ino) differs from
 * `expected` (four numbers a path), or -1 when every one matches.
 */
export function statCompareBlob(
  blob: Uint8Array,
  count: number,
  expected: Float64Array,
  impl?: StatBatchImpl,
  base?: string,
): {readonly stats: Float64Array; readonly firstChange: number} {
  if (expected.length < count * 4) throw new TypeError('statCompareBlob: expected is too small');
  return run(blob, count, impl, expected, base);
}

/**
 * `base`: an absolute folder most paths are under (the project root). The addon looks
 * those paths up from it, which walks fewer path components; the answers are the same.
 */
function run(blob: Uint8Array, count: number, impl: StatBatchImpl | undefined, expected: Float64Array | undefined, base?: string): {stats: Float64Array; firstChange: number} {
  const out = new Float64Array(count * STAT_FIELDS);
  const native = impl === 'js' ? null : loadAddon();
  if (native === null) {
    if (impl === 'native') throw new Error(`the native stat addon is not available: ${loadError ?? 'unknown reason'}`);
    statAllJs(splitBlob(blob, count), out);
    return {stats: out, firstChange: expected === undefined ? -1 : firstChange(out, expected, count)};
  }
  // 0: the addon uses one thread per usable CPU, at most four.
  const [firstError, change] = native.statBatch(blob, count, out, 0, expected, base);
  // Errors other than "does not exist" are rare: let fs.statSync throw its own.
  if (firstError >= 0) {
    for (let i = firstError; i < count; i++) {
      if (out[i * STAT_FIELDS] === OTHER_ERROR) statInto(pathAt(blob, i), out, i);
    }
  }
  return {stats: out, firstChange: change};
}

function firstChange(stats: Float64Array, expected: Float64Array, count: number): number {
  for (let i = 0; i < count; i++) {
    const t = STAT_FIELDS * i;
    const k = 4 * i;
    if (stats[t] !== expected[k] || stats[t + 1] !== expected[k + 1] || stats[t + 2] !== expected[k + 2] || stats[t + 3] !== expected[k + 3]) return i;
  }
  return -1;
}

/** Stats of the given paths; see statBatchBlob. */
export function statBatch(paths: readonly string[], impl?: StatBatchImpl, base?: string): Float64Array {
  if (paths.length === 0) return new Float64Array(0);
  // A NUL inside a path would split it in the blob: statSync rejects such a path itself.
  if (impl === 'js' || (impl === undefined && loadAddon() === null) || paths.some((p) => p.includes('\0'))) {
    const out = new Float64Array(paths.length * STAT_FIELDS);
    statAllJs(paths, out);
    return out;
  }
  return statBatchBlob(joinPaths(paths), paths.length, impl, base);
}

/** The paths as one buffer of NUL-terminated strings. */
export function joinPaths(paths: readonly string[]): Buffer {
  return Buffer.from(paths.join('\0') + '\0', 'utf8');
}

function splitBlob(blob: Uint8Array, count: number): string[] {
  const text = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength).toString('utf8');
  const parts = text.split('\0');
  if (parts.length < count + 1) throw new TypeError('statBatch: blob holds fewer NUL-terminated paths than count');
  parts.length = count;
  return parts;
}

function pathAt(blob: Uint8Array, index: number): string {
  let start = 0;
  for (let i = 0; i < index; i++) start = blob.indexOf(0, start) + 1;
  return Buffer.from(blob.buffer, blob.byteOffset + start, blob.indexOf(0, start) - start).toString('utf8');
}

function statAllJs(paths: readonly string[], out: Float64Array): void {
  for (let i = 0; i < paths.length; i++) statInto(paths[i]!, out, i);
}

function statInto(path: string, out: Float64Array, i: number): void {
  const st = statSync(path, {throwIfNoEntry: false});
  const k = i * STAT_FIELDS;
  if (st === undefined) {
    out.fill(-1, k, k + STAT_FIELDS);
    return;
  }
  out[k] = st.size;
  out[k + 1] = st.mtimeMs;
  out[k + 2] = st.ctimeMs;
  out[k + 3] = st.ino;
  out[k + 4] = st.isFile() ? 1 : 0;
}
