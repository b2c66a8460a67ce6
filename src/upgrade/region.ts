import {closeSync, fsyncSync, openSync, readSync, statSync, writeSync, constants as fsc} from 'node:fs';
import {PsyError} from '../errors.js';
import {runToolExit, tailOf} from '../tools/run.js';

/** A byte range of an image file or a whole block device: one slot or the ESP. */
export interface Region {
  readonly path: string;
  readonly offset: number;
  readonly size: number;
}

export function readRegion(r: Region, at: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = openSync(r.path, fsc.O_RDONLY);
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, r.offset + at + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

export function writeRegion(r: Region, at: number, data: Uint8Array, sync = true): void {
  if (at + data.length > r.size) throw new Error(`write past the end of ${r.path}@${r.offset}`);
  const fd = openSync(r.path, fsc.O_WRONLY);
  try {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done, r.offset + at + done);
    if (sync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function flushPath(path: string): void {
  const fd = openSync(path, fsc.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes the next reads of a block device come from the device, not from what the kernel
 * still caches of the writes (`blockdev --flushbufs`: flush, then drop the cached
 * blocks). A read-back after it checks what the disk really holds. Plain files (disk
 * images) are left alone: their cache is the only copy a later read would see.
 */
export async function dropCachedReads(path: string): Promise<void> {
  if (!statSync(path).isBlockDevice()) return;
  const r = await runToolExit('blockdev', ['--flushbufs', path]);
  if (r.code !== 0) throw new PsyError('flush-failed', `blockdev --flushbufs ${path} failed: ${tailOf(r.stderr.toString('utf8')) || `exit ${r.code}`}`);
}
