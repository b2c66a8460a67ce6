/**
 * Content hashes of files and directory trees, behind a stat cache kept in the state
 * log: a file is re-read only when its (size, mtime, ctime, inode) changed, or when its
 * cached stat was taken so soon after its mtime that a later same-timestamp write could
 * hide behind it ("racy", as git calls it). Each path is stat'ed at most once per build
 * unless it is invalidated (after an output is renamed into place).
 */
import {closeSync, lstatSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync, type Dirent, type Stats} from 'node:fs';
import {join, sep} from 'node:path';
import {createHasher, hashBytes} from './hash.js';
import {STAT_FIELDS, statBatch} from './stat-batch.js';
import type {FileRecord, StateLog} from './state-log.js';

/** A stat taken earlier this run (see seed). */
interface TakenStat {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  readonly file: boolean;
}

/** A stat taken less than this long after the file's mtime does not prove it unchanged. */
export const RACY_MS = 2000;
const STREAM_ABOVE = 8 << 20;

/** The stat fields psy uses; kept instead of fs.Stats to keep the heap small. */
export interface FileStat {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  isFile(): boolean;
}

class CompactStat implements FileStat {
  constructor(
    readonly size: number,
    readonly mtimeMs: number,
    readonly ctimeMs: number,
    readonly ino: number,
    readonly file: boolean,
  ) {}
  isFile(): boolean {
    return this.file;
  }
}

/** stat(2) of paths relative to the root, once per run (shared by analysis and hashing). */
export class StatCache {
  readonly #root: string;
  readonly #stats = new Map<string, FileStat | null>();
  #taken: ReadonlyMap<string, TakenStat | null> | undefined;
  readonly #replaced = new Set<string>();

  constructor(root: string) {
    this.#root = root;
  }

  readonly get = (rel: string): FileStat | undefined => {
    const memo = this.#stats.get(rel);
    if (memo !== undefined) return memo ?? undefined;
    const taken = this.#replaced.has(rel) ? undefined : this.#taken?.get(this.#root + sep + rel);
    if (taken !== undefined) {
      const c = taken === null ? null : new CompactStat(taken.size, taken.mtimeMs, taken.ctimeMs, taken.ino, taken.file);
      this.#stats.set(rel, c);
      return c ?? undefined;
    }
    const st = statSync(this.#root + sep + rel, {throwIfNoEntry: false});
    const c = st === undefined ? undefined : new CompactStat(st.size, st.mtimeMs, st.ctimeMs, st.ino, st.isFile());
    this.#stats.set(rel, c ?? null);
    return c;
  };

  invalidate(rel: string): void {
    this.#stats.delete(rel);
    // A stat taken before the file was replaced no longer holds.
    if (this.#taken !== undefined) this.#replaced.add(rel);
  }

  /** Stat the paths not cached yet in one batch (see stat-batch.ts), before they are asked for. */
  prefetch(rels: Iterable<string>): void {
    const todo: string[] = [];
    const taken = (rel: string) => this.#taken !== undefined && !this.#replaced.has(rel) && this.#taken.has(this.#root + sep + rel);
    for (const rel of rels) if (!this.#stats.has(rel) && !taken(rel)) todo.push(rel);
    // A few paths are not worth a batch.
    if (todo.length < 64) return;
    let st: Float64Array;
    try {
      st = statBatch(todo.map((rel) => this.#root + sep + rel));
    } catch {
      // A path that cannot be stat'ed: get() throws for it when it is asked for.
      return;
    }
    for (let i = 0; i < todo.length; i++) {
      const k = STAT_FIELDS * i;
      this.#stats.set(todo[i]!, st[k] === -1 ? null : new CompactStat(st[k]!, st[k + 1]!, st[k + 2]!, st[k + 3]!, st[k + 4] === 1));
    }
  }

  /**
   * Use stats already taken this run (absolute paths; null = missing), looked up when
   * first asked for: a cone build asks for a few of tens of thousands.
   */
  seed(taken: ReadonlyMap<string, TakenStat | null>): void {
    this.#taken = taken;
  }
}

export class FileHasher {
  readonly #root: string;
  readonly #log: StateLog;
  readonly #memo = new Map<string, string | null>();
  readonly #stats: StatCache;

  constructor(root: string, log: StateLog, stats: StatCache = new StatCache(root)) {
    this.#root = root;
    this.#log = log;
    this.#stats = stats;
  }

  /** Forget what this run knows about a path (it was just replaced). */
  invalidate(rel: string): void {
    this.#memo.delete(rel);
    this.#stats.invalidate(rel);
  }

  /** Content hash of a regular file (relative to the root), or undefined if missing. */
  file(rel: string): string | undefined {
    const memo = this.#memo.get(rel);
    if (memo !== undefined) return memo ?? undefined;
    const abs = this.#root + sep + rel;
    const st = this.#stats.get(rel);
    if (st === undefined || !st.isFile()) {
      this.#memo.set(rel, null);
      return undefined;
    }
    const hash = this.#cached(rel, st) ?? this.#rehash(rel, st, () => hashFileContent(abs, st.size));
    this.#memo.set(rel, hash);
    return hash;
  }

  /** Whether an output is there as what it is declared to be (what output() would hash). */
  exists(rel: string, kind: 'file' | 'dir'): boolean {
    if (kind === 'file') return this.#stats.get(rel)?.isFile() === true;
    return lstatSync(join(this.#root, rel), {throwIfNoEntry: false})?.isDirectory() === true;
  }

  /** Content hash of an output: a file, or a whole directory tree. */
  output(rel: string, kind: 'file' | 'dir'): string | undefined {
    if (kind === 'file') return this.file(rel);
    const memo = this.#memo.get(rel);
    if (memo !== undefined) return memo ?? undefined;
    const abs = join(this.#root, rel);
    const st = lstatSync(abs, {throwIfNoEntry: false});
    let hash: string | undefined;
    if (st?.isDirectory() === true) {
      // The tree's folders and their entries' names stand in for the stat data of a file
      // (see walkTree): a file edited in place inside an output tree is not looked at.
      const walk = walkTree(abs, st);
      const key = `${rel}/`;
      const rec = this.#log.files.get(key);
      const now = Date.now();
      if (rec !== undefined && rec.size === walk.entries && rec.hash.startsWith(walk.statPrint + ':') && rec.recordedAt - walk.maxTime > RACY_MS) {
        hash = rec.hash.slice(walk.statPrint.length + 1);
      } else {
        hash = hashTree(abs);
        if (now - walk.maxTime > RACY_MS || rec === undefined || !rec.hash.endsWith(':' + hash)) {
          this.#log.putFile({path: key, size: walk.entries, mtimeMs: walk.maxTime, ctimeMs: 0, ino: 0, recordedAt: now, hash: `${walk.statPrint}:${hash}`});
        }
      }
    }
    this.#memo.set(rel, hash ?? null);
    return hash;
  }

  #cached(rel: string, st: FileStat): string | undefined {
    const rec = this.#log.files.get(rel);
    if (
      rec !== undefined &&
      rec.size === st.size &&
      rec.mtimeMs === st.mtimeMs &&
      rec.ctimeMs === st.ctimeMs &&
      rec.ino === st.ino &&
      rec.recordedAt - st.mtimeMs > RACY_MS
    ) {
      return rec.hash;
    }
    return undefined;
  }

  #rehash(rel: string, st: FileStat, compute: () => string): string {
    const recordedAt = Date.now();
    const hash = compute();
    const rec = this.#log.files.get(rel);
    const same =
      rec !== undefined && rec.hash === hash && rec.size === st.size && rec.mtimeMs === st.mtimeMs && rec.ctimeMs === st.ctimeMs && rec.ino === st.ino;
    // Re-record an unchanged racy entry only once it can be trusted, to keep the log small.
    if (!same || recordedAt - st.mtimeMs > RACY_MS) {
      const r: FileRecord = {path: rel, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, recordedAt, hash};
      this.#log.putFile(r);
    }
    return hash;
  }
}

export function hashFileContent(abs: string, size: number): string {
  if (size <= STREAM_ABOVE) return hashBytes(readFileSync(abs));
  const h = createHasher();
  const buf = Buffer.allocUnsafe(1 << 20);
  const fd = openSync(abs, 'r');
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest();
}

interface TreeWalk {
  /** Entries in the tree (the root not counted). */
  entries: number;
  statPrint: string;
  /** The latest mtime or ctime of the tree's folders. */
  maxTime: number;
}

/**
 * The stat print of an output tree: the stat of every folder (the root included) and the
 * name and type of every entry, with no stat per file. An entry added, removed, renamed or
 * replaced changes its folder's mtime; a tree renamed into place changes the root's
 * inode. A file edited in place is not seen: psy trusts the files inside its outputs,
 * as ninja does (the no-op snapshot watches exactly these folders, see build.ts).
 */
function walkTree(dir: string, root: Stats): TreeWalk {
  const h = createHasher();
  let entries = 0;
  let maxTime = 0;
  const visit = (abs: string, rel: string, st: Stats) => {
    maxTime = Math.max(maxTime, st.mtimeMs, st.ctimeMs);
    h.update(`d\0${rel}\0${st.mode}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}\0${st.ino}\n`);
    const list = readdirSync(abs, {withFileTypes: true}).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of list) {
      entries++;
      h.update(`e\0${rel}${e.name}\0${entryType(e)}\n`);
    }
    for (const e of list) {
      if (e.isDirectory()) {
        const p = join(abs, e.name);
        visit(p, `${rel}${e.name}/`, lstatSync(p));
      }
    }
  };
  visit(dir, '', root);
  return {entries, statPrint: h.digest(), maxTime};
}

function entryType(e: Dirent): string {
  if (e.isFile()) return 'f';
  if (e.isDirectory()) return 'd';
  if (e.isSymbolicLink()) return 'l';
  return 'o';
}

/** Hash of a tree: names, types, permission bits, file contents and link targets. */
export function hashTree(dir: string): string {
  const h = createHasher();
  const visit = (abs: string, rel: string) => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      const st = lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        h.update(`d\0${rel}${name}\0${mode}\n`);
        visit(p, `${rel}${name}/`);
      } else if (st.isSymbolicLink()) {
        h.update(`l\0${rel}${name}\0${readlinkSync(p)}\n`);
      } else if (st.isFile()) {
        h.update(`f\0${rel}${name}\0${mode}\0${hashFileContent(p, st.size)}\n`);
      } else {
        h.update(`o\0${rel}${name}\0${st.mode}\n`);
      }
    }
  };
  visit(dir, '');
  return h.digest();
}
