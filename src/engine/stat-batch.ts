/**
 * stat(2) of many paths at once, for checks that stat thousands of files (the no-op
 * snapshot, the config manifest, the stat cache): fs.statSync one path at a time, with
 * the answers laid out flat so a snapshot compares them without objects per path.
 *
 * The answers are five numbers a path in a Float64Array: size, mtimeMs, ctimeMs, ino and
 * 1 for a regular file (0 otherwise); -1 in all five for a path that does not exist.
 */
import {statSync} from 'node:fs';

/** Numbers per path in a batch's answer. */
export const STAT_FIELDS = 5;

/** Stats of `count` NUL-terminated paths in `blob` (every path ends with a NUL byte). */
export function statBatchBlob(blob: Uint8Array, count: number): Float64Array {
  const out = new Float64Array(count * STAT_FIELDS);
  statAll(splitBlob(blob, count), out);
  return out;
}

/**
 * statBatchBlob, and the first path whose (size, mtimeMs, ctimeMs, ino) differs from
 * `expected` (four numbers a path), or -1 when every one matches. Every path is stat'ed:
 * after a change the caller reads the rest of the stats too.
 */
export function statCompareBlob(blob: Uint8Array, count: number, expected: Float64Array): {readonly stats: Float64Array; readonly firstChange: number} {
  if (expected.length < count * 4) throw new TypeError('statCompareBlob: expected is too small');
  const out = statBatchBlob(blob, count);
  for (let i = 0; i < count; i++) {
    const t = STAT_FIELDS * i;
    const k = 4 * i;
    if (out[t] !== expected[k] || out[t + 1] !== expected[k + 1] || out[t + 2] !== expected[k + 2] || out[t + 3] !== expected[k + 3]) {
      return {stats: out, firstChange: i};
    }
  }
  return {stats: out, firstChange: -1};
}

/** Stats of the given paths; see statBatchBlob. */
export function statBatch(paths: readonly string[]): Float64Array {
  const out = new Float64Array(paths.length * STAT_FIELDS);
  statAll(paths, out);
  return out;
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

function statAll(paths: readonly string[], out: Float64Array): void {
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
