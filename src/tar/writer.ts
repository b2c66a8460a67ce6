import {createReadStream, createWriteStream} from 'node:fs';
import {once} from 'node:events';
import {PsyError} from '../errors.js';
import {BLOCK, TYPEFLAG, encodeHeader, encodePax, type TarEntryType} from './codec.js';

export interface TarWriteEntry {
  readonly path: string;
  readonly type: TarEntryType;
  readonly mode: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly uname?: string;
  readonly gname?: string;
  readonly mtime: number;
  /** Content of a regular file held in memory. */
  readonly data?: Uint8Array;
  /** Or a file whose bytes are streamed (writeTarFile only), with its expected size. */
  readonly source?: {readonly path: string; readonly size: number};
  readonly linkTarget?: string;
  readonly devMajor?: number;
  readonly devMinor?: number;
  /** PAX records written in an `x` header before the entry (order kept). */
  readonly pax?: ReadonlyArray<readonly [string, string]>;
}

export interface WriteTarOptions {
  /** 'ustar' = POSIX "ustar\0" "00"; 'gnu' = old GNU "ustar  \0" (abuild's signature tar). */
  readonly format?: 'ustar' | 'gnu';
  /**
   * Names over 100 bytes: 'pax' records them in a PAX header (what abuild's tar does);
   * 'prefix' splits them into the ustar prefix and refuses what does not fit (plain
   * ustar, readable by every tool).
   */
  readonly longNames?: 'pax' | 'prefix';
  /** Append two zero blocks (false for abuild's "cut" control and signature tars). */
  readonly endOfArchive?: boolean;
  /** Pad the archive to a multiple of this many bytes (10240 for GNU tar's default). */
  readonly recordSize?: number;
  /** 12 octal digits without NUL for size and mtime (apk-tools' own tars). */
  readonly fullWidthNumbers?: boolean;
}

function dataSize(e: TarWriteEntry): number {
  if (e.type !== 'file') return 0;
  return e.source ? e.source.size : (e.data?.length ?? 0);
}

/** The header blocks of one entry (a PAX header first when it needs one), without its data. */
export function entryHeader(e: TarWriteEntry, options: WriteTarOptions = {}): Buffer {
  const format = options.format ?? 'ustar';
  const pax: Array<readonly [string, string]> = [...(e.pax ?? [])];
  const link = e.linkTarget ?? '';
  let name = e.path;
  let prefix = '';
  let linkName = link;
  if (options.longNames === 'prefix') {
    [prefix, name] = splitPath(e.path);
    if (Buffer.byteLength(link) > 100) throw new PsyError('tar-name-too-long', `tar: link target too long: ${link}`);
  } else {
    if (Buffer.byteLength(e.path) > 100) pax.push(['path', e.path]);
    if (Buffer.byteLength(link) > 100) pax.push(['linkpath', link]);
    name = truncateUtf8(e.path, 100);
    linkName = truncateUtf8(link, 100);
  }
  const blocks: Buffer[] = [];
  const enc = {format, fullWidthNumbers: options.fullWidthNumbers};
  if (pax.length > 0) {
    const body = encodePax(pax);
    const h = {name: paxHeaderName(e.path), typeflag: 'x', mode: 0o644, size: body.length, mtime: e.mtime, uname: e.uname, gname: e.gname};
    blocks.push(encodeHeader(h, enc), padBlock(body));
  }
  blocks.push(
    encodeHeader(
      {
        name,
        prefix,
        typeflag: TYPEFLAG[e.type],
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: dataSize(e),
        mtime: e.mtime,
        linkName,
        uname: e.uname,
        gname: e.gname,
        devMajor: e.devMajor,
        devMinor: e.devMinor,
      },
      enc,
    ),
  );
  return Buffer.concat(blocks);
}

/** Writes entries in the given order into a tar held in memory. */
export function writeTar(entries: Iterable<TarWriteEntry>, options: WriteTarOptions = {}): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const push = (b: Uint8Array) => {
    parts.push(Buffer.from(b.buffer, b.byteOffset, b.length));
    total += b.length;
  };
  for (const e of entries) {
    if (e.source) throw new PsyError('tar-field', `tar: ${e.path} streams from a file; use writeTarFile`);
    push(entryHeader(e, options));
    const size = dataSize(e);
    if (size > 0) {
      push(e.data!);
      if (size % BLOCK) push(Buffer.alloc(BLOCK - (size % BLOCK)));
    }
  }
  if (options.endOfArchive ?? true) push(Buffer.alloc(BLOCK * 2));
  const rec = options.recordSize;
  if (rec && total % rec !== 0) push(Buffer.alloc(rec - (total % rec)));
  return Buffer.concat(parts, total);
}

/** Writes entries in the given order to a tar file, streaming `source` files. */
export async function writeTarFile(out: string, entries: Iterable<TarWriteEntry>, options: WriteTarOptions = {}): Promise<void> {
  const ws = createWriteStream(out);
  const write = async (b: Uint8Array): Promise<void> => {
    if (!ws.write(b)) await once(ws, 'drain');
  };
  try {
    for (const e of entries) {
      await write(entryHeader(e, options));
      const size = dataSize(e);
      if (e.type === 'file' && e.source) {
        let seen = 0;
        for await (const chunk of createReadStream(e.source.path)) {
          seen += (chunk as Buffer).length;
          if (seen > size) break;
          await write(chunk as Buffer);
        }
        if (seen !== size) throw new PsyError('tar-source-changed', `tar: ${e.source.path} changed size while being archived`);
      } else if (size > 0) {
        await write(e.data!);
      }
      if (size % BLOCK) await write(Buffer.alloc(BLOCK - (size % BLOCK)));
    }
    if (options.endOfArchive ?? true) await write(Buffer.alloc(BLOCK * 2));
  } finally {
    ws.end();
    await once(ws, 'close');
  }
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

/** GNU tar's PAX header name: `<dir>/PaxHeaders/<base>` (abuild's archives use it). */
function paxHeaderName(path: string): string {
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path;
  const slash = trimmed.lastIndexOf('/');
  const dir = slash < 0 ? '.' : trimmed.slice(0, slash);
  const base = slash < 0 ? trimmed : trimmed.slice(slash + 1);
  return truncateUtf8(`${dir}/PaxHeaders/${base}`, 100);
}

function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  return Buffer.from(s)
    .subarray(0, max)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
}

function padBlock(b: Buffer): Buffer {
  const rem = b.length % BLOCK;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(BLOCK - rem)]);
}
