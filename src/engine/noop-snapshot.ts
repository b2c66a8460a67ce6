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
 * A snapshot is written only when every recorded stat was taken well after the file's
 * mtime (see RACY_MS), so a same-timestamp write cannot hide behind it.
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
  readonly version: 1;
  readonly identity: string;
  readonly targets: readonly string[];
  readonly envPath: string;
  readonly stateDir: string;
  readonly log: readonly [number, number, number];
  readonly upToDate: readonly string[];
  readonly outputs: Record<string, Record<string, string>>;
  readonly paths: readonly string[];
  readonly stats: readonly number[];
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

/** The result of a no-op if nothing changed since the snapshot, else undefined. */
export function checkSnapshot(file: string, identity: string, targets: readonly string[], envPath: string): FastResult | undefined {
  let s: Snapshot;
  try {
    s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  } catch {
    return undefined;
  }
  if (s.version !== 1 || s.identity !== identity || s.envPath !== envPath) return undefined;
  if (s.targets.length !== targets.length || s.targets.some((t, i) => t !== targets[i])) return undefined;
  const log = logTuple(s.stateDir);
  if (log[0] !== s.log[0] || log[1] !== s.log[1] || log[2] !== s.log[2]) return undefined;
  const stats = s.stats;
  for (let i = 0; i < s.paths.length; i++) {
    const st = statSync(s.paths[i]!, {throwIfNoEntry: false});
    const k = 4 * i;
    if (st === undefined) {
      if (stats[k] !== -1) return undefined;
      continue;
    }
    if (st.size !== stats[k] || st.mtimeMs !== stats[k + 1] || st.ctimeMs !== stats[k + 2] || st.ino !== stats[k + 3]) {
      return undefined;
    }
  }
  return {stateDir: s.stateDir, upToDate: s.upToDate, outputs: s.outputs};
}

export function removeSnapshot(file: string): void {
  rmSync(file, {force: true});
}

/**
 * Write a snapshot, unless a file changed while the build looked at it (its stat now
 * differs from the one the build used) or a stat is too close to its file's mtime.
 */
export function writeSnapshot(
  file: string,
  data: {identity: string; targets: readonly string[]; envPath: string; stateDir: string; upToDate: readonly string[]; outputs: Record<string, Record<string, string>>},
  entries: readonly SnapshotEntry[],
  buildStart: number,
  writeAtomic: (path: string, text: string) => void,
): boolean {
  const paths: string[] = [];
  const stats: number[] = [];
  for (const e of entries) {
    const now = statTuple(e.path);
    if (now[0] !== e.stat[0] || now[1] !== e.stat[1] || now[2] !== e.stat[2] || now[3] !== e.stat[3]) return false;
    if (now[0] !== -1 && (buildStart - now[1] <= RACY_MS || buildStart - now[2] <= RACY_MS)) return false;
    paths.push(e.path);
    stats.push(...now);
  }
  const snapshot: Snapshot = {version: 1, ...data, log: logTuple(data.stateDir), paths, stats};
  writeAtomic(file, JSON.stringify(snapshot));
  return true;
}
