import {createReadStream, createWriteStream} from 'node:fs';
import {chmod, lstat, mkdir, readFile, readdir, readlink, symlink, writeFile, utimes, lutimes} from 'node:fs/promises';
import {dirname, join, posix} from 'node:path';
import {once} from 'node:events';
import {gunzipSync} from 'node:zlib';
import {PsyError} from '../errors.js';

/**
 * A small ustar writer and reader. The writer exists for reproducibility: entries are
 * written in the order given (callers sort), owned by root, with one fixed mtime. The
 * reader unpacks an archive into a folder without root and returns every member's
 * metadata, so ownership and device nodes can be carried on by whoever needs them.
 */

export type TarEntry =
  | {readonly type: 'dir'; readonly path: string; readonly mode: number}
  | {readonly type: 'file'; readonly path: string; readonly mode: number; readonly source: string; readonly size: number}
  | {readonly type: 'data'; readonly path: string; readonly mode: number; readonly data: Uint8Array}
  | {readonly type: 'symlink'; readonly path: string; readonly target: string};

const BLOCK = 512;

function putString(h: Buffer, off: number, len: number, s: string, what: string): void {
  const b = Buffer.from(s, 'utf8');
  if (b.length > len) throw new PsyError('tar-name-too-long', `tar: ${what} too long: ${s}`);
  b.copy(h, off);
}

function putOctal(h: Buffer, off: number, len: number, n: number): void {
  const s = n.toString(8).padStart(len - 1, '0');
  if (s.length > len - 1) throw new PsyError('tar-too-large', `tar: value ${n} does not fit a ${len}-byte field`);
  h.write(s + '\0', off, 'ascii');
}

/** Split a path into ustar prefix and name (name ≤ 100 bytes, prefix ≤ 155). */
function splitPath(p: string): [string, string] {
  if (Buffer.byteLength(p) <= 100) return ['', p];
  for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) {
    const prefix = p.slice(0, i);
    const name = p.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return [prefix, name];
  }
  throw new PsyError('tar-name-too-long', `tar: path too long for ustar: ${p}`);
}

export function tarHeader(e: TarEntry, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  const path = e.type === 'dir' && !e.path.endsWith('/') ? e.path + '/' : e.path;
  const [prefix, name] = splitPath(path);
  putString(h, 0, 100, name, 'name');
  const mode = e.type === 'symlink' ? 0o777 : e.mode & 0o7777;
  putOctal(h, 100, 8, mode);
  putOctal(h, 108, 8, 0);
  putOctal(h, 116, 8, 0);
  const size = e.type === 'file' ? e.size : e.type === 'data' ? e.data.length : 0;
  putOctal(h, 124, 12, size);
  putOctal(h, 136, 12, mtime);
  h.write('        ', 148, 'ascii');
  h.write(e.type === 'dir' ? '5' : e.type === 'symlink' ? '2' : '0', 156, 'ascii');
  if (e.type === 'symlink') putString(h, 157, 100, e.target, 'link target');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  putOctal(h, 329, 8, 0);
  putOctal(h, 337, 8, 0);
  putString(h, 345, 155, prefix, 'path prefix');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/** Write entries, in the given order, to a tar file. Every member gets `mtime`. */
export async function writeTar(out: string, entries: readonly TarEntry[], mtime: number): Promise<void> {
  const ws = createWriteStream(out);
  const write = async (b: Uint8Array): Promise<void> => {
    if (!ws.write(b)) await once(ws, 'drain');
  };
  try {
    for (const e of entries) {
      await write(tarHeader(e, mtime));
      let size = 0;
      if (e.type === 'data') {
        await write(e.data);
        size = e.data.length;
      } else if (e.type === 'file') {
        for await (const chunk of createReadStream(e.source)) {
          await write(chunk as Buffer);
          size += (chunk as Buffer).length;
        }
        if (size !== e.size) throw new PsyError('tar-source-changed', `tar: ${e.source} changed size while being archived`);
      }
      const pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (pad) await write(Buffer.alloc(pad));
    }
    await write(Buffer.alloc(BLOCK * 2));
  } finally {
    ws.end();
    await once(ws, 'close');
  }
}

/** An archive of in-memory entries (no `file` entries), as writeTar would write it. */
export function tarBytes(entries: readonly TarEntry[], mtime: number): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.type === 'file') throw new PsyError('tar-unsupported', `tar: ${e.path}: tarBytes takes data entries only`);
    parts.push(tarHeader(e, mtime));
    if (e.type === 'data') {
      parts.push(Buffer.from(e.data));
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

/** Entries for everything under `dir`, sorted by path, modes from the files. */
export async function directoryEntries(dir: string, prefix = ''): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const abs = join(dir, r);
      const st = await lstat(abs);
      const path = prefix ? posix.join(prefix, r) : r;
      if (st.isDirectory()) {
        entries.push({type: 'dir', path, mode: st.mode & 0o7777});
        await walk(r);
      } else if (st.isSymbolicLink()) {
        entries.push({type: 'symlink', path, target: await readlink(abs)});
      } else if (st.isFile()) {
        entries.push({type: 'file', path, mode: st.mode & 0o7777, source: abs, size: st.size});
      } else {
        throw new PsyError('tar-unsupported', `tar: ${abs} is neither file, folder nor symlink`);
      }
    }
  };
  await walk('');
  return entries;
}

export type TarMemberType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarMember {
  readonly path: string;
  readonly type: TarMemberType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime: number;
  readonly size: number;
  readonly linkTarget: string;
  readonly devMajor: number;
  readonly devMinor: number;
}

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return s.subarray(0, z === -1 ? len : z).toString('utf8');
}

function octal(b: Buffer, off: number, len: number): number {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    // base-256 (GNU) for large values
    let n = 0;
    for (let i = 1; i < len; i++) n = n * 256 + f[i]!;
    return n;
  }
  const s = cstr(b, off, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function paxRecords(data: Buffer): Map<string, string> {
  const m = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp === -1) break;
    const len = parseInt(data.subarray(i, sp).toString('ascii'), 10);
    if (!len) break;
    const rec = data.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) m.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return m;
}

const typeOf: Record<string, TarMemberType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink',
  '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};

/** Parse a tar (optionally gzip-compressed) held in memory; calls `onMember` with each member's data. */
export function parseTar(
  archive: Buffer,
  what: string,
  onMember: (m: TarMember, data: Buffer) => void,
): void {
  const buf = archive[0] === 0x1f && archive[1] === 0x8b ? gunzipSync(archive) : archive;
  let off = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax = new Map<string, string>();
  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((x) => x === 0)) break;
    const magic = cstr(h, 257, 6);
    if (magic !== 'ustar' && magic !== 'ustar ') throw new PsyError('bad-tar', `${what}: not a tar archive (bad header at byte ${off})`);
    const flag = String.fromCharCode(h[156]!);
    let size = octal(h, 124, 12);
    if (pax.has('size')) size = Number(pax.get('size'));
    const dataStart = off + BLOCK;
    const data = buf.subarray(dataStart, dataStart + size);
    if (data.length < size) throw new PsyError('bad-tar', `${what}: truncated archive`);
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'L') { longName = cstr(data, 0, data.length); continue; }
    if (flag === 'K') { longLink = cstr(data, 0, data.length); continue; }
    if (flag === 'x') { pax = paxRecords(data); continue; }
    if (flag === 'g') continue;
    const type = typeOf[flag];
    if (!type) throw new PsyError('bad-tar', `${what}: unsupported member type '${flag}'`);
    const prefix = cstr(h, 345, 155);
    const rawName = cstr(h, 0, 100);
    let path = pax.get('path') ?? longName ?? (prefix ? `${prefix}/${rawName}` : rawName);
    path = path.replace(/^\.\//, '').replace(/\/+$/, '');
    const member: TarMember = {
      path,
      type,
      mode: octal(h, 100, 8) & 0o7777,
      uid: octal(h, 108, 8),
      gid: octal(h, 116, 8),
      mtime: octal(h, 136, 12),
      size: type === 'file' ? size : 0,
      linkTarget: pax.get('linkpath') ?? longLink ?? cstr(h, 157, 100),
      devMajor: octal(h, 329, 8),
      devMinor: octal(h, 337, 8),
    };
    longName = undefined;
    longLink = undefined;
    pax = new Map();
    if (path === '' || path === '.') continue;
    if (path.split('/').includes('..') || path.startsWith('/')) {
      throw new PsyError('bad-tar', `${what}: member ${path} escapes the target folder`);
    }
    onMember(member, data);
  }
}

/**
 * Unpack a tar file into `dest` without root: files, folders, symlinks and hard links
 * are created (ownership is not), device nodes and fifos are only reported. Returns
 * every member so callers can reproduce ownership and special files elsewhere.
 */
export async function extractTar(tarPath: string, dest: string): Promise<TarMember[]> {
  const members: TarMember[] = [];
  const datas: Buffer[] = [];
  parseTar(await readFile(tarPath), tarPath, (m, d) => {
    members.push(m);
    datas.push(d);
  });
  await mkdir(dest, {recursive: true});
  const dirs: TarMember[] = [];
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    const abs = join(dest, m.path);
    await mkdir(dirname(abs), {recursive: true});
    switch (m.type) {
      case 'dir':
        await mkdir(abs, {recursive: true});
        dirs.push(m);
        break;
      case 'file':
        await writeFile(abs, datas[i]!, {mode: 0o600});
        await chmod(abs, m.mode);
        await utimes(abs, m.mtime, m.mtime);
        break;
      case 'symlink':
        await symlink(m.linkTarget, abs);
        await lutimes(abs, m.mtime, m.mtime).catch(() => {});
        break;
      case 'hardlink': {
        const {link} = await import('node:fs/promises');
        await link(join(dest, m.linkTarget.replace(/^\.\//, '')), abs);
        break;
      }
      case 'char':
      case 'block':
      case 'fifo':
        break;
    }
  }
  // Folder modes last, deepest first, so a read-only folder does not block its contents.
  for (const m of dirs.reverse()) {
    const abs = join(dest, m.path);
    await chmod(abs, m.mode);
    await utimes(abs, m.mtime, m.mtime);
  }
  return members;
}
