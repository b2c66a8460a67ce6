import {mkdir, readFile, rm, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {PRIVATE_PREFIX} from './layout.js';

const LOCK = `${PRIVATE_PREFIX}lock`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One writer per replica at a time (publish, forcepull, forcepush). A lock left by a
 * process that no longer runs (killed publish) is taken over.
 */
export async function withReplicaLock<T>(root: string, what: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(root, {recursive: true});
  const path = join(root, LOCK);
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(path, `${process.pid} ${what}\n`, {flag: 'wx'});
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw err;
      const [pid, ...holder] = (await readFile(path, 'utf8').catch(() => '')).trim().split(' ');
      const n = Number(pid);
      if (Number.isInteger(n) && n > 0 && n !== process.pid && alive(n)) {
        throw new PsyError('locked', `the replica ${root} is in use by ${holder.join(' ') || 'another psy'} (pid ${n})`);
      }
      await rm(path, {force: true});
    }
  }
  try {
    return await fn();
  } finally {
    await rm(path, {force: true});
  }
}
