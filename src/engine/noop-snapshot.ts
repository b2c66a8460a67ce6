/**
 * The no-op fast path. After a build in which every wanted target ended up to date,
 * psy writes the stat data of every file that decided it: the config's modules (via
 * the config identity), files the config read while loading, every input, every output,
 * the tools' executables and the state log itself. The next `psy build` of the same
 * targets first stats exactly those files; if every one is unchanged it is a no-op
 * without evaluating the config, replaying the log or hashing anything (ninja's cost:
 * one stat per file). Any difference falls back to the full check, which is what
 * decides, by content, what runs.
 *
 * When the only differences are input and output files (same config, same read files,
 * same tools, same state log), the check still stats every entry and reports the
 * changed ones with all the stats it took: the full check then re-examines only the
 * cones of those files and reuses the stats instead of taking them again.
 *
 * The snapshot records the stats the build used, so a file that changes during the build
 * differs next time. A stat too close to its file's mtime (see RACY_MS) is not
 * recorded: the entry is marked so that it never
 * matches, and the next build re-examines that file's cone by content (a same-timestamp
 * write cannot hide behind it). Such a snapshot is never a no-op.
 */
import {readFileSync, rmSync, statSync} from 'node:fs';
import {basename, join} from 'node:path';
import {PsyError} from '../errors.js';
import {RACY_MS} from './file-hasher.js';
import {STAT_FIELDS, statCompareBlob} from './stat-batch.js';

export interface SnapshotEntry {
  readonly path: string;
  /** size, mtimeMs, ctimeMs, ino; all -1 for a file that must stay missing. */
  readonly stat: readonly [number, number, number, number];
}

/**
 * The snapshot file, one binary file read whole and decoded only as far as needed:
 *
 *   magic "PSYNOOP3"
 *   u32 head length, u32 result length, u32 paths length, u32 entry count
 *   head    JSON (Head)
 *   result  JSON (Result; parsed only by a caller that wants the target names)
 *   paths   every entry's absolute path, NUL-terminated (stat'ed as they are)
 *   padding to a multiple of 8 bytes from the file's start
 *   stats   Float64 × 4 per entry: size, mtimeMs, ctimeMs, ino
 *
 * The lengths must add up to the file's size exactly: a truncated file is refused.
 */
const MAGIC = 'PSYNOOP3';
const PREAMBLE = 24;
const FIELDS = 4;

interface Head {
  readonly identity: string;
  readonly targets: readonly string[];
  readonly envPath: string;
  readonly stateDir: string;
  readonly log: readonly [number, number, number];
  /** Leading entries that are files the config read; trailing entries that are tools. */
  readonly configReads: number;
  readonly tools: number;
  /** How many targets are up to date (the length of Result.upToDate). */
  readonly fresh: number;
  /** Id of the analysed graph cached beside the snapshot (see graph-cache.ts). */
  readonly graph?: string;
}

interface Result {
  readonly upToDate: readonly string[];
  readonly outputs: Record<string, Record<string, string>>;
}

interface Decoded {
  readonly head: Head;
  readonly result: Uint8Array;
  readonly paths: Uint8Array;
  readonly count: number;
  readonly stats: Float64Array;
}

function decode(buf: Buffer): Decoded | undefined {
  if (buf.length < PREAMBLE || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return undefined;
  const headLen = buf.readUInt32LE(8);
  const resultLen = buf.readUInt32LE(12);
  const pathsLen = buf.readUInt32LE(16);
  const count = buf.readUInt32LE(20);
  const pathsEnd = PREAMBLE + headLen + resultLen + pathsLen;
  const statsAt = align8(pathsEnd);
  if (statsAt + count * FIELDS * 8 !== buf.length) return undefined;
  const head = JSON.parse(buf.toString('utf8', PREAMBLE, PREAMBLE + headLen)) as Head;
  if (!validHead(head, count)) return undefined;
  const paths = buf.subarray(PREAMBLE + headLen + resultLen, pathsEnd);
  // The stats are read in place when the buffer's memory is aligned for doubles.
  const stats =
    (buf.byteOffset + statsAt) % 8 === 0
      ? new Float64Array(buf.buffer, buf.byteOffset + statsAt, count * FIELDS)
      : new Float64Array(Uint8Array.prototype.slice.call(buf, statsAt).buffer);
  return {head, result: buf.subarray(PREAMBLE + headLen, PREAMBLE + headLen + resultLen), paths, count, stats};
}

function validHead(h: Head, count: number): boolean {
  const nat = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  return (
    typeof h === 'object' &&
    h !== null &&
    typeof h.identity === 'string' &&
    typeof h.envPath === 'string' &&
    typeof h.stateDir === 'string' &&
    Array.isArray(h.targets) &&
    Array.isArray(h.log) &&
    h.log.length === 3 &&
    nat(h.configReads) &&
    nat(h.tools) &&
    nat(h.fresh) &&
    h.configReads + h.tools <= count &&
    (h.graph === undefined || typeof h.graph === 'string')
  );
}

function encode(head: Head, result: Result, paths: readonly string[], stats: readonly number[]): Buffer {
  const headBytes = Buffer.from(JSON.stringify(head), 'utf8');
  const resultBytes = Buffer.from(JSON.stringify(result), 'utf8');
  const pathBytes = Buffer.from(paths.length === 0 ? '' : paths.join('\0') + '\0', 'utf8');
  const {buf, statsAt} = layOut(headBytes, resultBytes, pathBytes, paths.length);
  for (let i = 0; i < stats.length; i++) buf.writeDoubleLE(stats[i]!, statsAt + 8 * i);
  return buf;
}

/** A snapshot file with its preamble and sections in place; the stats (from statsAt) are left to the caller. */
function layOut(head: Uint8Array, result: Uint8Array, paths: Uint8Array, count: number): {buf: Buffer; statsAt: number} {
  const pathsEnd = PREAMBLE + head.length + result.length + paths.length;
  const statsAt = align8(pathsEnd);
  const buf = Buffer.allocUnsafe(statsAt + count * FIELDS * 8);
  buf.fill(0, 0, PREAMBLE);
  buf.fill(0, pathsEnd, statsAt);
  buf.write(MAGIC, 0, 'latin1');
  buf.writeUInt32LE(head.length, 8);
  buf.writeUInt32LE(result.length, 12);
  buf.writeUInt32LE(paths.length, 16);
  buf.writeUInt32LE(count, 20);
  buf.set(head, PREAMBLE);
  buf.set(result, PREAMBLE + head.length);
  buf.set(paths, PREAMBLE + head.length + result.length);
  return {buf, statsAt};
}

const align8 = (n: number) => (n + 7) & ~7;

/** Stat data the check took, for paths the full check will look at again. */
export interface TakenStat {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  readonly file: boolean;
}

/** Only these input/output files differ from the snapshot (absolute paths). */
export interface ChangedFiles {
  readonly changed: ReadonlySet<string>;
  /** Every entry's stat as taken by the check; null = missing. */
  readonly stats: ReadonlyMap<string, TakenStat | null>;
  /** The state log's (size, mtime, inode) the snapshot was made against. */
  readonly log: readonly [number, number, number];
  readonly stateDir: string;
  /** The files the config read, with their (unchanged) stats. */
  readonly configReads: readonly SnapshotEntry[];
  /** The tools' executables, with their (unchanged) stats: targets outside the changed cones are not asked for theirs again. */
  readonly tools: readonly SnapshotEntry[];
  readonly graph: string | undefined;
  /** The snapshot file's bytes as checked (a cone build writes them again, patched). */
  readonly snapshot?: Buffer;
}

export interface FastResult {
  readonly stateDir: string;
  /** upToDate.length, known without decoding the names. */
  readonly upToDateCount: number;
  /** Decoded on first use; throws if that part of the snapshot is corrupt. */
  readonly upToDate: readonly string[];
  /** Decoded on first use; throws if that part of the snapshot is corrupt. */
  readonly outputs: Record<string, Record<string, string>>;
}

/** The up-to-date targets and their outputs, parsed when someone asks for them. */
class StoredResult implements FastResult {
  readonly stateDir: string;
  readonly upToDateCount: number;
  readonly #bytes: Uint8Array;
  #parsed: Result | undefined;

  constructor(stateDir: string, count: number, bytes: Uint8Array) {
    this.stateDir = stateDir;
    this.upToDateCount = count;
    this.#bytes = bytes;
  }

  #result(): Result {
    if (this.#parsed === undefined) {
      const corrupt = () => new PsyError('state-corrupt', `the no-op snapshot in ${this.stateDir} is corrupt: remove cache/config/noop-*.snap and build again`);
      let r: Result;
      try {
        r = JSON.parse(Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset, this.#bytes.byteLength).toString('utf8')) as Result;
      } catch {
        throw corrupt();
      }
      if (!Array.isArray(r.upToDate) || r.upToDate.length !== this.upToDateCount || typeof r.outputs !== 'object' || r.outputs === null) {
        throw corrupt();
      }
      this.#parsed = r;
    }
    return this.#parsed;
  }

  get upToDate(): readonly string[] {
    return this.#result().upToDate;
  }

  get outputs(): Record<string, Record<string, string>> {
    return this.#result().outputs;
  }
}

export function snapshotPath(root: string, configPath: string, targets: readonly string[]): string {
  const key = [...targets]
    .sort()
    .join(',')
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(0, 80);
  return join(root, 'cache', 'config', `noop-${basename(configPath)}-${key === '' ? 'default' : key}.snap`);
}

/** A snapshot entry's stat of a path now: size, mtimeMs, ctimeMs, ino; all -1 when missing. */
export function statTuple(path: string): [number, number, number, number] {
  const st = statSync(path, {throwIfNoEntry: false});
  return st === undefined ? [-1, -1, -1, -1] : [st.size, st.mtimeMs, st.ctimeMs, st.ino];
}

function logTuple(stateDir: string): [number, number, number] {
  const [size, mtime, , ino] = statTuple(join(stateDir, 'log'));
  return [size, mtime, ino];
}

/**
 * The result of a no-op if nothing changed since the snapshot; the changed input and
 * output files if only those changed; else undefined (the full check decides alone).
 */
export function checkSnapshot(
  file: string,
  identity: string,
  targets: readonly string[],
  envPath: string,
): {readonly kind: 'fresh'; readonly result: FastResult} | {readonly kind: 'changed'; readonly files: ChangedFiles} | undefined {
  let d: Decoded | undefined;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
    d = decode(bytes);
  } catch {
    return undefined;
  }
  if (d === undefined) return undefined;
  const s = d.head;
  if (s.identity !== identity || s.envPath !== envPath) return undefined;
  if (s.targets.length !== targets.length || s.targets.some((t, i) => t !== targets[i])) return undefined;
  const log = logTuple(s.stateDir);
  if (log[0] !== s.log[0] || log[1] !== s.log[1] || log[2] !== s.log[2]) return undefined;
  const stored = d.stats;
  const n = d.count;
  let taken: Float64Array;
  let firstChange: number;
  try {
    ({stats: taken, firstChange} = statCompareBlob(d.paths, n, stored));
  } catch {
    // A path that cannot be stat'ed (not a missing file): the full check decides.
    return undefined;
  }
  if (firstChange === -1) return {kind: 'fresh', result: new StoredResult(s.stateDir, s.fresh, d.result)};
  const firstTool = n - s.tools;
  for (let i = firstChange; i < n; i++) {
    const k = FIELDS * i;
    const t = STAT_FIELDS * i;
    if (taken[t] !== stored[k] || taken[t + 1] !== stored[k + 1] || taken[t + 2] !== stored[k + 2] || taken[t + 3] !== stored[k + 3]) {
      // A file the config read or a tool: the graph or the keys may differ everywhere.
      if (i < s.configReads || i >= firstTool) return undefined;
    }
  }

  // Only the paths a cone build needs are decoded; every stat taken, when asked for.
  const changedAt: number[] = [];
  for (let i = s.configReads; i < firstTool; i++) {
    const k = FIELDS * i;
    const t = STAT_FIELDS * i;
    if (taken[t] !== stored[k] || taken[t + 1] !== stored[k + 1] || taken[t + 2] !== stored[k + 2] || taken[t + 3] !== stored[k + 3]) changedAt.push(i);
  }
  const wanted: number[] = [];
  for (let j = 0; j < s.configReads; j++) wanted.push(j);
  for (const i of changedAt) wanted.push(i);
  for (let j = firstTool; j < n; j++) wanted.push(j);
  const some = pathsAt(d.paths, wanted);
  const changed = new Set(changedAt.map((i) => some.get(i)!));
  let stats: Map<string, TakenStat | null> | undefined;
  const allStats = (): Map<string, TakenStat | null> => {
    const paths = Buffer.from(d.paths.buffer, d.paths.byteOffset, d.paths.byteLength).toString('utf8').split('\0');
    const m = new Map<string, TakenStat | null>();
    for (let i = s.configReads; i < firstTool; i++) {
      const t = STAT_FIELDS * i;
      m.set(
        paths[i]!,
        taken[t] === -1 ? null : {size: taken[t]!, mtimeMs: taken[t + 1]!, ctimeMs: taken[t + 2]!, ino: taken[t + 3]!, file: taken[t + 4] === 1},
      );
    }
    return m;
  };
  const entry = (j: number): SnapshotEntry => ({
    path: some.get(j)!,
    stat: [stored[FIELDS * j]!, stored[FIELDS * j + 1]!, stored[FIELDS * j + 2]!, stored[FIELDS * j + 3]!],
  });
  const configReads: SnapshotEntry[] = [];
  for (let j = 0; j < s.configReads; j++) configReads.push(entry(j));
  const tools: SnapshotEntry[] = [];
  for (let j = firstTool; j < n; j++) tools.push(entry(j));
  const files: ChangedFiles = {
    changed,
    get stats() {
      return (stats ??= allStats());
    },
    log: s.log,
    stateDir: s.stateDir,
    configReads,
    tools,
    graph: s.graph,
    snapshot: bytes,
  };
  return {kind: 'changed', files};
}

/** The paths with these entry numbers (ascending) in a NUL-terminated path list. */
function pathsAt(list: Uint8Array, entries: readonly number[]): Map<number, string> {
  const out = new Map<number, string>();
  // A plain Uint8Array's indexOf finds the NULs fast; only wanted paths become strings.
  const bytes = new Uint8Array(list.buffer, list.byteOffset, list.byteLength);
  const text = Buffer.from(list.buffer, list.byteOffset, list.byteLength);
  let entry = 0;
  let start = 0;
  for (const want of entries) {
    while (entry < want) {
      start = bytes.indexOf(0, start) + 1;
      entry++;
    }
    out.set(want, text.toString('utf8', start, bytes.indexOf(0, start)));
  }
  return out;
}

/** The state log's identity now: (size, mtime, inode). */
export function currentLogTuple(stateDir: string): [number, number, number] {
  return logTuple(stateDir);
}

export function removeSnapshot(file: string): void {
  rmSync(file, {force: true});
}

/** Stats of an entry that must be re-examined next time: matches no stat, not even a missing file. */
const RECHECK = -2;

/**
 * Write a snapshot of the stats the build used. An input or output file whose stat is
 * too close to its mtime is marked for re-examination; such a file the config read, or
 * such a tool, means no snapshot (returns false).
 */
export function writeSnapshot(
  file: string,
  data: {
    identity: string;
    targets: readonly string[];
    envPath: string;
    stateDir: string;
    upToDate: readonly string[];
    outputs: Record<string, Record<string, string>>;
    graph?: string;
  },
  entries: readonly SnapshotEntry[],
  counts: {readonly configReads: number; readonly tools: number},
  buildStart: number,
  writeAtomic: (path: string, data: Uint8Array) => void,
): boolean {
  const paths: string[] = [];
  const stats: number[] = [];
  const firstTool = entries.length - counts.tools;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    // The stat the build used (taken after buildStart): if the file changes later, the
    // next check sees a different stat; a stat close to its mtime proves nothing.
    const now = e.stat;
    const racy = now[0] !== -1 && (buildStart - now[1] <= RACY_MS || buildStart - now[2] <= RACY_MS);
    paths.push(e.path);
    if (racy) {
      if (i < counts.configReads || i >= firstTool) return false;
      stats.push(RECHECK, RECHECK, RECHECK, RECHECK);
    } else {
      stats.push(now[0], now[1], now[2], now[3]);
    }
  }
  const {upToDate, outputs, ...rest} = data;
  const head: Head = {...rest, log: logTuple(data.stateDir), ...counts, fresh: upToDate.length};
  writeAtomic(file, encode(head, {upToDate, outputs}, paths, stats));
  return true;
}

/** The snapshot file's bytes, or undefined. */
export function readSnapshot(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Write the snapshot `previous` (a snapshot file's bytes) again with some input and
 * output entries' stats replaced, as a build that looked only at those files leaves it:
 * every other entry is unchanged since the check that found these changed, and the
 * state log's identity is taken now. The racy rule is writeSnapshot's. Returns false
 * (and writes nothing) when `previous` is unreadable or lacks one of the paths.
 */
export function patchSnapshot(
  file: string,
  previous: Buffer,
  patches: ReadonlyMap<string, SnapshotEntry['stat']>,
  buildStart: number,
  writeAtomic: (path: string, data: Uint8Array) => void,
): boolean {
  let d: Decoded | undefined;
  try {
    d = decode(previous);
  } catch {
    return false;
  }
  if (d === undefined) return false;
  const paths = Buffer.from(d.paths.buffer, d.paths.byteOffset, d.paths.byteLength);
  const index = entryIndices(paths, patches);
  if (index === undefined) return false;
  const firstTool = d.count - d.head.tools;
  const head = Buffer.from(JSON.stringify({...d.head, log: logTuple(d.head.stateDir)}), 'utf8');
  const result = d.result;
  const {buf: out, statsAt} = layOut(head, result, paths, d.count);
  out.set(new Uint8Array(d.stats.buffer, d.stats.byteOffset, d.stats.byteLength), statsAt);
  for (const [path, i] of index) {
    // Only input and output entries change in a cone build.
    if (i < d.head.configReads || i >= firstTool) return false;
    const now = patches.get(path)!;
    const racy = now[0] !== -1 && (buildStart - now[1] <= RACY_MS || buildStart - now[2] <= RACY_MS);
    for (let k = 0; k < FIELDS; k++) out.writeDoubleLE(racy ? RECHECK : now[k]!, statsAt + 8 * (FIELDS * i + k));
  }
  writeAtomic(file, out);
  return true;
}

/** Entry numbers of these paths in a NUL-terminated path list; undefined if one is missing. */
function entryIndices(list: Buffer, paths: ReadonlySet<string> | ReadonlyMap<string, unknown>): Map<string, number> | undefined {
  if (paths.size > 16) {
    // Many: one pass over every path beats a search for each.
    const out = new Map<string, number>();
    const all = list.toString('utf8').split('\0');
    for (let i = 0; i < all.length; i++) if (paths.has(all[i]!)) out.set(all[i]!, i);
    return out.size === paths.size ? out : undefined;
  }
  const found: Array<[number, string]> = [];
  for (const path of paths.keys()) {
    const needle = Buffer.from(path + '\0', 'utf8');
    let at = list.indexOf(needle);
    while (at > 0 && list[at - 1] !== 0) at = list.indexOf(needle, at + 1);
    if (at === -1) return undefined;
    found.push([at, path]);
  }
  found.sort((a, b) => a[0] - b[0]);
  const out = new Map<string, number>();
  // Entries before a path = NULs before it (a plain Uint8Array's indexOf is the fast one).
  const bytes = new Uint8Array(list.buffer, list.byteOffset, list.byteLength);
  let count = 0;
  let nul = bytes.indexOf(0);
  for (const [at, path] of found) {
    while (nul !== -1 && nul < at) {
      count++;
      nul = bytes.indexOf(0, nul + 1);
    }
    out.set(path, count);
  }
  return out;
}

/** The wanted targets' outputs a snapshot file's bytes record; undefined if unreadable. */
export function snapshotOutputs(bytes: Buffer): Record<string, Record<string, string>> | undefined {
  try {
    const d = decode(bytes);
    return d === undefined ? undefined : new StoredResult(d.head.stateDir, d.head.fresh, d.result).outputs;
  } catch {
    return undefined;
  }
}
