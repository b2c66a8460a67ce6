import {closeSync, openSync, readSync} from 'node:fs';
import {PsyError} from '../errors.js';

export interface TarMember {
  /** Normalised name (no leading `./`). */
  readonly name: string;
  readonly size: number;
  /** Byte offset of the member's data in the tar file. */
  readonly dataOffset: number;
}

function field(h: Buffer, off: number, len: number): string {
  const end = h.indexOf(0, off);
  return h.toString('utf8', off, end >= 0 && end < off + len ? end : off + len);
}

function octal(h: Buffer, off: number, len: number, where: string): number {
  if ((h[off]! & 0x80) !== 0) {
    // GNU base-256 for sizes over 8 GiB
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + h[i]!;
    return v;
  }
  const s = field(h, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new PsyError('bad-tarball', `${where}: malformed tar header field`);
  return parseInt(s, 8);
}

function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    const sp = data.indexOf(0x20, p);
    if (sp < 0) break;
    const len = Number(data.toString('latin1', p, sp));
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = data.toString('utf8', sp + 1, p + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    p += len;
  }
  return out;
}

/**
 * Lists an uncompressed tar (ustar, pax, GNU long names) after its signature has been
 * verified, refusing anything but plain files with safe names: no absolute paths, no
 * `..`, no links or devices, no duplicates, and only names `allowed` accepts.
 */
export function listTar(
  path: string,
  allowed: (name: string) => boolean,
  what: string,
  allowedDir: (name: string) => boolean = () => false,
): TarMember[] {
  const fd = openSync(path, 'r');
  const members: TarMember[] = [];
  const seen = new Set<string>();
  try {
    const h = Buffer.alloc(512);
    let pos = 0;
    let pax = new Map<string, string>();
    let longName: string | undefined;
    for (;;) {
      const n = readSync(fd, h, 0, 512, pos);
      if (n === 0) break;
      if (n < 512) throw new PsyError('bad-tarball', `${what}: truncated tar header at byte ${pos}`);
      if (h.every((b) => b === 0)) break;
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
      if (sum !== octal(h, 148, 8, what)) throw new PsyError('bad-tarball', `${what}: tar header checksum mismatch at byte ${pos}`);
      const type = String.fromCharCode(h[156]!);
      const size = octal(h, 124, 12, what);
      const dataOffset = pos + 512;
      pos = dataOffset + Math.ceil(size / 512) * 512;
      if (type === 'x' || type === 'L' || type === 'g') {
        if (size > 1 << 20) throw new PsyError('bad-tarball', `${what}: oversized tar extension header`);
        const data = Buffer.alloc(size);
        readSync(fd, data, 0, size, dataOffset);
        if (type === 'x') pax = parsePax(data);
        if (type === 'L') longName = data.toString('utf8').replace(/\0+$/, '');
        continue;
      }
      const prefix = field(h, 345, 155);
      let name = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
      const realSize = pax.has('size') ? Number(pax.get('size')) : size;
      pax = new Map();
      longName = undefined;
      const raw = name;
      while (name.startsWith('./')) name = name.slice(2);
      if (type === '5' && (name === '' || name === '.' || name === './')) continue;
      if (raw.startsWith('/') || name.split('/').some((p) => p === '..')) {
        throw new PsyError('bad-tarball', `${what}: refusing escaping member name "${raw}"`);
      }
      if (type === '5' && allowedDir(name.replace(/\/+$/, ''))) continue;
      if (type !== '0' && type !== '\0' && type !== '7') {
        throw new PsyError('bad-tarball', `${what}: refusing member "${raw}" of tar type '${type}' (only plain files are accepted)`);
      }
      if (!allowed(name)) throw new PsyError('bad-tarball', `${what}: unexpected member "${raw}"`);
      if (seen.has(name)) throw new PsyError('bad-tarball', `${what}: duplicate member "${raw}"`);
      seen.add(name);
      members.push({name, size: realSize, dataOffset});
    }
  } finally {
    closeSync(fd);
  }
  return members;
}
