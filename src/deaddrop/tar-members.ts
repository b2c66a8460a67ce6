import {open} from 'node:fs/promises';

/**
 * Reads small top-level members (e.g. `kernel.version`) out of an uncompressed tar
 * without unpacking it: walks the 512-byte headers and seeks over the data. Handles
 * ustar prefixes, GNU long names and pax `path` records.
 */
export async function readTarMembers(path: string, wanted: readonly string[], maxSize = 1 << 16): Promise<Map<string, Buffer>> {
  const want = new Set(wanted.map(strip));
  const found = new Map<string, Buffer>();
  const fh = await open(path, 'r');
  try {
    const header = Buffer.alloc(512);
    let offset = 0;
    let longName: string | undefined;
    for (;;) {
      const {bytesRead} = await fh.read(header, 0, 512, offset);
      if (bytesRead < 512 || header.every((b) => b === 0)) break;
      const size = parseInt(header.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
      if (!Number.isFinite(size) || size < 0) break;
      const type = String.fromCharCode(header[156]!);
      const dataOffset = offset + 512;
      const readData = async (limit: number): Promise<Buffer> => {
        const buf = Buffer.alloc(Math.min(size, limit));
        await fh.read(buf, 0, buf.length, dataOffset);
        return buf;
      };
      if (type === 'L') {
        longName = (await readData(4096)).toString('utf8').replace(/\0.*$/s, '');
      } else if (type === 'x') {
        const m = /\d+ path=([^\n]*)\n/.exec((await readData(65536)).toString('utf8'));
        longName = m?.[1];
      } else {
        const name = longName ?? ustarName(header);
        longName = undefined;
        const key = strip(name);
        if ((type === '0' || type === '\0') && want.has(key) && size <= maxSize) found.set(key, await readData(maxSize));
      }
      offset = dataOffset + Math.ceil(size / 512) * 512;
      if (found.size === want.size) break;
    }
  } finally {
    await fh.close();
  }
  return found;
}

function ustarName(h: Buffer): string {
  const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
  const magic = h.toString('latin1', 257, 262);
  const prefix = magic === 'ustar' ? h.toString('utf8', 345, 500).replace(/\0.*$/s, '') : '';
  return prefix ? `${prefix}/${name}` : name;
}

function strip(name: string): string {
  return name.replace(/^\.\//, '').replace(/^\/+/, '');
}
