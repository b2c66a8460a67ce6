import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {PidFileLock} from '../pid-file-lock.js';
import {PRIVATE_PREFIX} from './layout.js';

const LOCK = `${PRIVATE_PREFIX}lock`;

/**
 * One writer per replica at a time (publish, forcepull, forcepush). A lock left by a
 * process that no longer runs (killed publish) is taken over.
 */
export async function withReplicaLock<T>(root: string, what: string, fn: () => Promise<T>): Promise<T> {
  const lock = PidFileLock.acquire(join(root, LOCK), {
    note: what,
    locked: ({pid, note}) => new PsyError('locked', `the replica ${root} is in use by ${note || 'another psy'} (pid ${pid})`),
  });
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
