import {createHash} from 'node:crypto';
import {open} from 'node:fs/promises';

/**
 * sha256 of a file, read through one reused buffer: a stream would allocate a fresh
 * buffer per chunk, and for files of hundreds of MB that garbage costs more CPU than
 * the hashing itself.
 */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
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
