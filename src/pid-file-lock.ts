/**
 * A lock file created with O_EXCL that holds the holder's pid (and a note saying what it
 * is doing). A lock whose pid no longer runs is stale and taken over: a build or publish
 * killed with SIGKILL never blocks the next one.
 */
import {closeSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync} from 'node:fs';
import {dirname} from 'node:path';
import {PsyError} from './errors.js';

export interface PidFileLockOptions {
  /** Written after the pid, shown to whoever finds the lock taken. */
  readonly note?: string;
  /** The error for a lock held by a live process. */
  readonly locked: (holder: {pid: number; note: string}) => PsyError;
  /** Hears about a lock left by a dead process before it is taken over. */
  readonly onStale?: (pid: number) => void;
}

export class PidFileLock {
  readonly path: string;
  #held = false;

  private constructor(path: string) {
    this.path = path;
  }

  /** Take the lock or throw `options.locked(...)`. */
  static acquire(path: string, options: PidFileLockOptions): PidFileLock {
    mkdirSync(dirname(path), {recursive: true});
    const lock = new PidFileLock(path);
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const fd = openSync(path, 'wx');
        writeSync(fd, `${process.pid}${options.note ? ` ${options.note}` : ''}\n`);
        closeSync(fd);
        lock.#held = true;
        return lock;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readHolder(path);
      if (holder !== undefined && holder.pid !== process.pid && isAlive(holder.pid)) {
        throw options.locked(holder);
      }
      if (holder !== undefined) options.onStale?.(holder.pid);
      // Take over by renaming the stale file away: only one contender's rename wins.
      try {
        renameSync(path, `${path}.stale-${process.pid}`);
        unlinkSync(`${path}.stale-${process.pid}`);
      } catch {
        // Someone else took it over first; try again.
      }
    }
    throw new PsyError('locked', `could not take the lock ${path}`);
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      if (readHolder(this.path)?.pid === process.pid) unlinkSync(this.path);
    } catch {
      // Nothing to release.
    }
  }
}

function readHolder(path: string): {pid: number; note: string} | undefined {
  try {
    const [pid, ...note] = readFileSync(path, 'utf8').trim().split(' ');
    const n = Number.parseInt(pid ?? '', 10);
    return Number.isInteger(n) && n > 0 ? {pid: n, note: note.join(' ')} : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
