/**
 * One build at a time per state folder. The lock is a file created with O_EXCL holding
 * the holder's pid; a lock whose pid no longer runs is stale and taken over.
 */
import {closeSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync} from 'node:fs';
import {join} from 'node:path';
import {PsyError} from '../errors.js';

export class BuildLock {
  readonly path: string;
  #held = false;

  private constructor(path: string) {
    this.path = path;
  }

  /**
   * Take the lock or throw a PsyError naming the holder. `onStale` hears about a lock
   * left by a dead process before it is taken over.
   */
  static acquire(stateDir: string, onStale?: (pid: number) => void): BuildLock {
    mkdirSync(stateDir, {recursive: true});
    const lock = new BuildLock(join(stateDir, 'lock'));
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const fd = openSync(lock.path, 'wx');
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        lock.#held = true;
        return lock;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readHolder(lock.path);
      if (holder !== undefined && holder !== process.pid && isAlive(holder)) {
        throw new PsyError(
          'locked',
          `another psy build (pid ${holder}) is using ${stateDir}; wait for it to finish or stop it`,
        );
      }
      if (holder !== undefined) onStale?.(holder);
      // Take over by renaming the stale file away: only one contender's rename wins.
      try {
        renameSync(lock.path, `${lock.path}.stale-${process.pid}`);
        unlinkSync(`${lock.path}.stale-${process.pid}`);
      } catch {
        // Someone else took it over first; try again.
      }
    }
    throw new PsyError('locked', `could not take the build lock ${lock.path}`);
  }

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      if (readHolder(this.path) === process.pid) unlinkSync(this.path);
    } catch {
      // Nothing to release.
    }
  }
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
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
