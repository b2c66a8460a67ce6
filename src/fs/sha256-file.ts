import {createHash} from 'node:crypto';
import {closeSync, openSync, readSync} from 'node:fs';
import {open} from 'node:fs/promises';

/**
 * The one sha256-of-a-file helper. Files are read through one reused 1 MiB buffer: a
 * stream would allocate a fresh buffer per chunk, and for files of hundreds of MB that
 * garbage costs more CPU than the hashing itself.
 */
const CHUNK = 1 << 20;

/** sha256 (hex) of a file's content. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const {bytesRead} = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** sha256 (hex) and size of a file, for synchronous callers. */
export function sha256FileSync(path: string): {sha256: string; size: number} {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(CHUNK);
  const fd = openSync(path, 'r');
  let size = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, size);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      size += n;
    }
  } finally {
    closeSync(fd);
  }
  return {sha256: h.digest('hex'), size};
}
