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
import {RACY_MS} from './file-hasher.js';

export interface SnapshotEntry {
  readonly path: string;
  /** size, mtimeMs, ctimeMs, ino; all -1 for a file that must stay missing. */
  readonly stat: readonly [number, number, number, number];
}

interface Snapshot {
  readonly version: 2;
  readonly identity: string;
  readonly targets: readonly string[];
  readonly envPath: string;
  readonly stateDir: string;
  readonly log: readonly [number, number, number];
  readonly upToDate: readonly string[];
  readonly outputs: Record<string, Record<string, string>>;
  readonly paths: readonly string[];
  readonly stats: readonly number[];
  /** Leading entries that are files the config read; trailing entries that are tools. */
  readonly configReads: number;
  readonly tools: number;
  /** Id of the analysed graph cached beside the snapshot (see graph-cache.ts). */
  readonly graph?: string;
}

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
}

export interface FastResult {
  readonly stateDir: string;
  readonly upToDate: readonly string[];
  readonly outputs: Record<string, Record<string, string>>;
}

export function snapshotPath(root: string, configPath: string, targets: readonly string[]): string {
  const key = [...targets].sort().join(',').replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80);
  return join(root, 'cache', 'config', `noop-${basename(configPath)}-${key === '' ? 'default' : key}.json`);
}

function statTuple(path: string): [number, number, number, number] {
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
  let s: Snapshot;
  try {
    s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  } catch {
    return undefined;
  }
  if (s.version !== 2 || s.identity !== identity || s.envPath !== envPath) return undefined;
  if (s.targets.length !== targets.length || s.targets.some((t, i) => t !== targets[i])) return undefined;
  const log = logTuple(s.stateDir);
  if (log[0] !== s.log[0] || log[1] !== s.log[1] || log[2] !== s.log[2]) return undefined;
  const stats = s.stats;
  const n = s.paths.length;
  const firstTool = n - s.tools;
  let changed: Set<string> | undefined;
  let taken: Map<string, TakenStat | null> | undefined;
  for (let i = 0; i < n; i++) {
    const path = s.paths[i]!;
    const st = statSync(path, {throwIfNoEntry: false});
    const k = 4 * i;
    const same =
      st === undefined
        ? stats[k] === -1
        : st.size === stats[k] && st.mtimeMs === stats[k + 1] && st.ctimeMs === stats[k + 2] && st.ino === stats[k + 3];
    if (!same) {
      // A file the config read or a tool: the graph or the keys may differ everywhere.
      if (i < s.configReads || i >= firstTool) return undefined;
      if (changed === undefined) {
        changed = new Set();
        taken = new Map();
        // Stats taken before the first difference are kept too.
        for (let j = s.configReads; j < i; j++) {
          const m = 4 * j;
          taken.set(s.paths[j]!, stats[m] === -1 ? null : {size: stats[m]!, mtimeMs: stats[m + 1]!, ctimeMs: stats[m + 2]!, ino: stats[m + 3]!, file: true});
        }
      }
      changed.add(path);
    }
    if (taken !== undefined && i >= s.configReads && i < firstTool) {
      taken.set(path, st === undefined ? null : {size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, file: st.isFile()});
    }
  }
  if (changed === undefined) return {kind: 'fresh', result: {stateDir: s.stateDir, upToDate: s.upToDate, outputs: s.outputs}};
  const configReads: SnapshotEntry[] = [];
  for (let j = 0; j < s.configReads; j++) {
    configReads.push({path: s.paths[j]!, stat: [stats[4 * j]!, stats[4 * j + 1]!, stats[4 * j + 2]!, stats[4 * j + 3]!]});
  }
  const tools: SnapshotEntry[] = [];
  for (let j = firstTool; j < n; j++) {
    tools.push({path: s.paths[j]!, stat: [stats[4 * j]!, stats[4 * j + 1]!, stats[4 * j + 2]!, stats[4 * j + 3]!]});
  }
  return {kind: 'changed', files: {changed, stats: taken!, log: s.log, stateDir: s.stateDir, configReads, tools, graph: s.graph}};
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
  data: {identity: string; targets: readonly string[]; envPath: string; stateDir: string; upToDate: readonly string[]; outputs: Record<string, Record<string, string>>; graph?: string},
  entries: readonly SnapshotEntry[],
  counts: {readonly configReads: number; readonly tools: number},
  buildStart: number,
  writeAtomic: (path: string, text: string) => void,
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
  const snapshot: Snapshot = {version: 2, ...data, log: logTuple(data.stateDir), paths, stats, ...counts};
  writeAtomic(file, JSON.stringify(snapshot));
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
  previous: Uint8Array,
  patches: ReadonlyMap<string, SnapshotEntry['stat']>,
  buildStart: number,
  writeAtomic: (path: string, text: string) => void,
): boolean {
  let s: Snapshot;
  try {
    s = JSON.parse(Buffer.from(previous.buffer, previous.byteOffset, previous.byteLength).toString('utf8')) as Snapshot;
  } catch {
    return false;
  }
  if (s.version !== 2 || !Array.isArray(s.paths) || !Array.isArray(s.stats)) return false;
  const stats = s.stats as number[];
  const firstTool = s.paths.length - s.tools;
  let left = patches.size;
  for (let i = s.configReads; i < firstTool && left > 0; i++) {
    const now = patches.get(s.paths[i]!);
    if (now === undefined) continue;
    left--;
    const racy = now[0] !== -1 && (buildStart - now[1] <= RACY_MS || buildStart - now[2] <= RACY_MS);
    for (let k = 0; k < 4; k++) stats[4 * i + k] = racy ? RECHECK : now[k]!;
  }
  if (left > 0) return false;
  writeAtomic(file, JSON.stringify({...s, log: logTuple(s.stateDir)}));
  return true;
}
