/** One build at a time per state folder (see PidFileLock for stale-lock takeover). */
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {PidFileLock} from '../pid-file-lock.js';

export const BuildLock = {
  acquire(stateDir: string, onStale?: (pid: number) => void): PidFileLock {
    return PidFileLock.acquire(join(stateDir, 'lock'), {
      locked: ({pid}) => new PsyError('locked', `another psy build (pid ${pid}) is using ${stateDir}; wait for it to finish or stop it`),
      ...(onStale ? {onStale} : {}),
    });
  },
};
