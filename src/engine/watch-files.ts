/**
 * File watching for watch mode, on chokidar. Declared files are watched through their
 * folders (not their inodes), so editors that save by writing a temporary file and
 * renaming it over the original, or by deleting and re-creating it, are seen like any
 * other write, and a deleted input is seen when it comes back. Glob bases are watched
 * as trees, so a new file matching a glob counts. Everything else is filtered out here:
 * the caller hears only about paths that can change a build.
 */
import {existsSync, statSync} from 'node:fs';
import {dirname, relative, sep} from 'node:path';
import type {FSWatcher} from 'chokidar';
import {globMatches, type WatchSet} from './watch-inputs.js';

const LOST_POLL_MS = 200;

function isDir(path: string): boolean {
  return statSync(path, {throwIfNoEntry: false})?.isDirectory() === true;
}

export type ChangeKind = 'added' | 'changed' | 'deleted';

export interface FileChange {
  readonly kind: ChangeKind;
  /** Absolute path. */
  readonly path: string;
  /** The path is the config or a module it imports. */
  readonly config: boolean;
  /** The path is a data file the config read when it was evaluated. */
  readonly configRead?: boolean;
}

export interface WatchSummary {
  readonly files: number;
  readonly folders: number;
  readonly globs: readonly string[];
  readonly configFiles: number;
}

export class InputWatcher {
  readonly #onChange: (change: FileChange) => void;
  readonly #onError: (message: string) => void;
  #set: WatchSet | undefined;
  /** Folders of declared files, watched without descending. */
  #flat: FSWatcher | undefined;
  /** Glob bases, watched as trees. */
  #deep: FSWatcher | undefined;
  #flatPaths = new Set<string>();
  #deepPaths = new Set<string>();
  /** Watched folders that are gone (moved away, checked out); polled until they return. */
  readonly #lost = new Set<string>();
  #poll: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(onChange: (change: FileChange) => void, onError: (message: string) => void) {
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** Watch exactly `set` from now on; resolves once new folders are being watched. */
  async update(set: WatchSet): Promise<void> {
    if (this.#closed) return;
    this.#set = set;
    const flat = new Set<string>();
    for (const f of [...set.inputs, ...set.configFiles, ...set.configReads]) flat.add(dirname(f));
    const deep = new Set(set.globs.map((g) => g.base));
    const {watch} = await import('chokidar');
    if (this.#closed) return;
    const ready: Array<Promise<void>> = [];
    const sync = (current: FSWatcher | undefined, had: Set<string>, want: Set<string>, depth: number | undefined): FSWatcher | undefined => {
      const added = [...want].filter((p) => !had.has(p));
      const removed = [...had].filter((p) => !want.has(p));
      if (current === undefined) {
        if (want.size === 0) return undefined;
        const w = watch([...want], {
          ignoreInitial: true,
          ...(depth === undefined ? {} : {depth}),
          ignored: (path: string) => this.#ignored(path),
        });
        ready.push(new Promise((resolve) => w.once('ready', () => resolve())));
        for (const ev of ['add', 'change', 'unlink'] as const) {
          w.on(ev, (path: string | Error) => {
            if (typeof path === 'string') this.#event(ev, path);
          });
        }
        w.on('unlinkDir', (path: string | Error) => {
          if (typeof path === 'string' && (this.#flatPaths.has(path) || this.#deepPaths.has(path))) this.#lose(path);
        });
        w.on('error', (err: unknown) => this.#onError(err instanceof Error ? err.message : String(err)));
        return w;
      }
      if (removed.length > 0) current.unwatch(removed);
      if (added.length > 0) current.add(added);
      return current;
    };
    this.#flat = sync(this.#flat, this.#flatPaths, flat, 0);
    this.#deep = sync(this.#deep, this.#deepPaths, deep, undefined);
    this.#flatPaths = flat;
    this.#deepPaths = deep;
    for (const p of this.#lost) if (!flat.has(p) && !deep.has(p)) this.#lost.delete(p);
    for (const p of [...flat, ...deep]) if (!isDir(p)) this.#lose(p);
    await Promise.all(ready);
  }

  /**
   * A watched folder disappeared. chokidar does not notice it coming back, so poll for it
   * (rare: a folder moved away and back, a branch checkout), then watch it afresh and
   * report the declared files in it as added.
   */
  #lose(path: string): void {
    this.#lost.add(path);
    if (this.#poll !== undefined || this.#closed) return;
    this.#poll = setInterval(() => this.#checkLost(), LOST_POLL_MS);
    this.#poll.unref();
  }

  #checkLost(): void {
    const set = this.#set;
    for (const p of this.#lost) {
      if (!isDir(p)) continue;
      this.#lost.delete(p);
      for (const [w, paths] of [
        [this.#flat, this.#flatPaths],
        [this.#deep, this.#deepPaths],
      ] as const) {
        if (w === undefined || !paths.has(p)) continue;
        w.unwatch(p);
        w.add(p);
      }
      if (set === undefined) continue;
      let reported = false;
      for (const [files, config] of [
        [set.inputs, false],
        [set.configFiles, true],
      ] as const) {
        for (const f of files) {
          const inside = this.#flatPaths.has(p) ? dirname(f) === p : f.startsWith(p + sep);
          if (inside && existsSync(f)) {
            reported = true;
            this.#onChange({kind: 'added', path: f, config});
          }
        }
      }
      // A glob base with no known input in it: new files may match.
      if (!reported && this.#deepPaths.has(p)) this.#onChange({kind: 'added', path: p, config: false});
    }
    if (this.#lost.size === 0 && this.#poll !== undefined) {
      clearInterval(this.#poll);
      this.#poll = undefined;
    }
  }

  summary(): WatchSummary {
    const set = this.#set;
    if (set === undefined) return {files: 0, folders: 0, globs: [], configFiles: 0};
    return {
      files: set.inputs.size,
      folders: new Set([...this.#flatPaths, ...this.#deepPaths]).size,
      globs: set.globs.map((g) => g.pattern),
      configFiles: set.configFiles.size,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#poll !== undefined) clearInterval(this.#poll);
    await Promise.all([this.#flat?.close(), this.#deep?.close()]);
    this.#flat = this.#deep = undefined;
  }

  #ignored(path: string): boolean {
    const set = this.#set;
    if (set === undefined) return false;
    return set.ignoredDirs.some((d) => path === d || path.startsWith(d + sep));
  }

  #event(ev: 'add' | 'change' | 'unlink', path: string): void {
    const set = this.#set;
    if (set === undefined || this.#closed) return;
    const kind: ChangeKind = ev === 'add' ? 'added' : ev === 'change' ? 'changed' : 'deleted';
    if (set.configFiles.has(path)) {
      this.#onChange({kind, path, config: true});
      return;
    }
    if (set.inputs.has(path)) {
      this.#onChange({kind, path, config: false});
      return;
    }
    if (set.configReads.has(path)) {
      this.#onChange({kind, path, config: true, configRead: true});
      return;
    }
    // Not a known input: only a new file a glob now matches can matter.
    if (ev !== 'add' || this.#ignored(path)) return;
    const rel = relative(set.root, path);
    for (const g of set.globs) {
      if (!(path.startsWith(g.base + sep) || g.base === set.root)) continue;
      if (globMatches(set.root, g.pattern, set.globIgnore, rel)) {
        this.#onChange({kind, path, config: false});
        return;
      }
    }
  }
}
