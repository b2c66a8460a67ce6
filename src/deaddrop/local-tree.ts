import {lstat, readdir, readFile, readlink, realpath, stat} from 'node:fs/promises';
import {dirname, join, relative, resolve, sep} from 'node:path';
import {PsyError} from '../errors.js';
import {writeFileAtomic} from '../fs/atomic-write.js';
import {sha256File} from '../fs/sha256-file.js';
import {PRIVATE_PREFIX} from './layout.js';

export type LocalEntry =
  | {readonly type: 'file'; readonly key: string; readonly path: string; readonly size: number; readonly sha256: string}
  | {readonly type: 'redirect'; readonly key: string; readonly path: string; readonly target: string};

/** Cached file hashes (by stat identity) and what the bucket held after the last sync. */
export interface SyncState {
  files: Record<string, {size: number; mtimeMs: number; ctimeMs: number; ino: number; sha256: string}>;
  /** remote id (endpoint|bucket|prefix) → key → what psy last saw there */
  remotes: Record<string, Record<string, {etag: string; size: number; sha256: string}>>;
}

/** Files at least this big are hashed one at a time (see scanReplica). */
const BIG_FILE = 16 * 2 ** 20;

export const STATE_FILE = `${PRIVATE_PREFIX}sync-state.json`;

export async function loadState(root: string): Promise<SyncState> {
  try {
    const s = JSON.parse(await readFile(join(root, STATE_FILE), 'utf8')) as SyncState;
    if (typeof s.files === 'object' && typeof s.remotes === 'object') return s;
  } catch {
    // missing or damaged: it is only a cache
  }
  return {files: {}, remotes: {}};
}

export async function saveState(root: string, state: SyncState): Promise<void> {
  await writeFileAtomic(join(root, STATE_FILE), JSON.stringify(state));
}

/**
 * Lists the replica: regular files with their sha256 (re-hashed only when the stat
 * identity changed) and symlinks as redirects to the key they point at. A link that
 * leaves the replica or dangles is an error: publishing it would break readers.
 */
/** Runs at most `limit` of the given tasks at once. */
export function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    if (active >= limit) await new Promise<void>((ok) => waiting.push(ok));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

export async function scanReplica(
  root: string,
  state: SyncState,
  onFile?: (entry: Extract<LocalEntry, {type: 'file'}>) => void,
): Promise<Map<string, LocalEntry>> {
  const out = new Map<string, LocalEntry>();
  const realRoot = await realpath(root).catch(() => {
    throw new PsyError('missing-input', `replica ${root} does not exist`);
  });
  // First walk the tree and check every link (cheap), so a bad link fails the scan
  // before any file is hashed or handed to onFile.
  const files: Array<{key: string; path: string}> = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, {withFileTypes: true});
    await Promise.all(
      entries.map(async (e) => {
        if (e.name.startsWith(PRIVATE_PREFIX)) return;
        const path = join(dir, e.name);
        const key = relative(root, path).split(sep).join('/');
        if (e.isDirectory()) return walk(path);
        if (e.isSymbolicLink()) {
          const target = await readlink(path);
          const abs = resolve(dirname(path), target);
          const real = await realpath(abs).catch(() => undefined);
          if (real === undefined) throw new PsyError('bad-replica', `${key}: symlink to ${target} dangles`);
          const relTarget = relative(realRoot, real);
          if (relTarget.startsWith('..') || resolve(realRoot, relTarget) !== real) {
            throw new PsyError('bad-replica', `${key}: symlink to ${target} leaves the replica`);
          }
          if (!(await stat(real)).isFile()) throw new PsyError('bad-replica', `${key}: symlink to ${target} is not a file`);
          // the redirect names the link's direct target, like the local link does
          const direct = relative(root, abs).split(sep).join('/');
          out.set(key, {type: 'redirect', key, path, target: direct.startsWith('..') ? relTarget.split(sep).join('/') : direct});
          return;
        }
        if (e.isFile()) files.push({key, path});
      }),
    );
  };
  await walk(root);
  const fresh: SyncState['files'] = {};
  // Large files are hashed one at a time, biggest first: the first big upload then starts
  // after one file's hash instead of after all of them (hashing them side by side only
  // splits the same cores), and its upload overlaps the next file's hash. Small files have
  // their own lane so they are not queued behind the big ones.
  const bigLane = limiter(1);
  const smallLane = limiter(2);
  const sized = await Promise.all(files.map(async (f) => ({...f, st: await lstat(f.path)})));
  sized.sort((a, b) => b.st.size - a.st.size);
  const hashing = (size: number): ReturnType<typeof limiter> => (size >= BIG_FILE ? bigLane : smallLane);
  await Promise.all(
    sized.map(async ({key, path, st}) => {
      const cached = state.files[key];
      const sha256 =
        cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs && cached.ctimeMs === st.ctimeMs && cached.ino === st.ino
          ? cached.sha256
          : await hashing(st.size)(() => sha256File(path));
      fresh[key] = {size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, sha256};
      const entry = {type: 'file' as const, key, path, size: st.size, sha256};
      out.set(key, entry);
      onFile?.(entry);
    }),
  );
  state.files = fresh;
  return out;
}
