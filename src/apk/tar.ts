import {PsyError} from '../errors.js';

/**
 * A tar reader and writer for the archives APK uses: POSIX ustar with PAX extended
 * headers (abuild's data and control tars, with `APK-TOOLS.checksum.SHA1` records),
 * old-GNU headers (signature tars, scripts.tar) and GNU long names.
 */

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarEntry {
  /** Path as stored (PAX `path` or GNU long name applied), without changes. */
  readonly path: string;
  readonly type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (07777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  readonly mtime: number;
  /** Symlink target, or the path a hardlink points to. */
  readonly linkTarget: string;
  readonly devMajor: number;
  readonly devMinor: number;
  /** PAX records of this entry (global ones merged in). */
  readonly pax: Readonly<Record<string, string>>;
  /** File content (empty for anything but regular files). */
  readonly data: Buffer;
}

const BLOCK = 512;

export interface ReadTarOptions {
  /** Accept a tar that ends without end-of-archive blocks (abuild's "cut" control tars). */
  readonly allowMissingEnd?: boolean;
}

/** Reads every entry of an uncompressed tar held in memory. */
export function readTar(buf: Buffer, what: string, options: ReadTarOptions = {}): TarEntry[] {
  const entries: TarEntry[] = [];
  let p = 0;
  let global: Record<string, string> = {};
  let pendingPax: Record<string, string> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    if (p >= buf.length) {
      if (options.allowMissingEnd) break;
      throw new PsyError('apk-corrupt', `${what}: tar archive ends without end-of-archive blocks (truncated)`);
    }
    if (p + BLOCK > buf.length) {
      throw new PsyError('apk-corrupt', `${what}: truncated tar header at byte ${p}`);
    }
    const h = buf.subarray(p, p + BLOCK);
    if (isZeroBlock(h)) break;
    verifyHeaderChecksum(h, p, what);
    const typeflag = String.fromCharCode(h[156]!);
    const size = readNumber(h, 124, 12, 'size', p, what);
    const dataStart = p + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > buf.length) {
      throw new PsyError('apk-corrupt', `${what}: truncated tar entry at byte ${p} (needs ${size} bytes)`);
    }
    const body = buf.subarray(dataStart, dataEnd);
    p = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    switch (typeflag) {
      case 'x':
        pendingPax = {...(pendingPax ?? {}), ...parsePax(body, what)};
        continue;
      case 'g':
        global = {...global, ...parsePax(body, what)};
        continue;
      case 'L':
        longName = cString(body);
        continue;
      case 'K':
        longLink = cString(body);
        continue;
      default:
        break;
    }
    const type = entryType(typeflag, p, what);
    const pax = {...global, ...(pendingPax ?? {})};
    const magic = h.subarray(257, 263).toString('latin1');
    let name = cString(h.subarray(0, 100));
    if (magic === 'ustar\0') {
      const prefix = cString(h.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    if (longName !== undefined) name = longName;
    if (pax['path'] !== undefined) name = pax['path'];
    let link = cString(h.subarray(157, 257));
    if (longLink !== undefined) link = longLink;
    if (pax['linkpath'] !== undefined) link = pax['linkpath'];
    const realSize = pax['size'] !== undefined ? Number(pax['size']) : size;
    if (realSize !== size) throw new PsyError('apk-corrupt', `${what}: PAX size disagrees with header for ${name}`);
    entries.push({
      path: name,
      type,
      mode: readNumber(h, 100, 8, 'mode', p, what) & 0o7777,
      uid: pax['uid'] !== undefined ? Number(pax['uid']) : readNumber(h, 108, 8, 'uid', p, what),
      gid: pax['gid'] !== undefined ? Number(pax['gid']) : readNumber(h, 116, 8, 'gid', p, what),
      uname: pax['uname'] ?? cString(h.subarray(265, 297)),
      gname: pax['gname'] ?? cString(h.subarray(297, 329)),
      mtime: pax['mtime'] !== undefined ? Math.floor(Number(pax['mtime'])) : readNumber(h, 136, 12, 'mtime', p, what),
      linkTarget: link,
      devMajor: type === 'char' || type === 'block' ? readNumber(h, 329, 8, 'devmajor', p, what) : 0,
      devMinor: type === 'char' || type === 'block' ? readNumber(h, 337, 8, 'devminor', p, what) : 0,
      pax,
      data: type === 'file' ? body : Buffer.alloc(0),
    });
    pendingPax = undefined;
    longName = undefined;
    longLink = undefined;
  }
  return entries;
}

function entryType(flag: string, at: number, what: string): TarEntryType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
      return 'directory';
    case '6':
      return 'fifo';
    default:
      throw new PsyError('apk-corrupt', `${what}: unsupported tar entry type '${flag}' near byte ${at}`);
  }
}

function isZeroBlock(h: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

function verifyHeaderChecksum(h: Buffer, at: number, what: string): void {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  const stored = readNumber(h, 148, 8, 'checksum', at, what);
  if (stored !== sum) throw new PsyError('apk-corrupt', `${what}: tar header checksum mismatch at byte ${at}`);
}

function readNumber(h: Buffer, off: number, len: number, field: string, at: number, what: string): number {
  if (h[off]! & 0x80) {
    // GNU base-256: big-endian, high bit of the first byte is the marker.
    let v = h[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + h[off + i]!;
    return v;
  }
  const s = h.subarray(off, off + len).toString('latin1').replace(/[\0 ]+$/g, '').replace(/^[ ]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new PsyError('apk-corrupt', `${what}: bad tar ${field} field at byte ${at}`);
  return parseInt(s, 8);
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('utf8');
}

/** Parses PAX `len key=value\n` records. */
export function parsePax(body: Buffer, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  let p = 0;
  while (p < body.length) {
    const sp = body.indexOf(0x20, p);
    if (sp < 0) break;
    const len = Number(body.subarray(p, sp).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || p + len > body.length) {
      throw new PsyError('apk-corrupt', `${what}: malformed PAX record`);
    }
    const rec = body.subarray(sp + 1, p + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq < 0) throw new PsyError('apk-corrupt', `${what}: malformed PAX record`);
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    p += len;
  }
  return out;
}

// ---------------------------------------------------------------- writer

export interface TarWriteEntry {
  readonly path: string;
  readonly type: TarEntryType;
  readonly mode: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly uname?: string;
  readonly gname?: string;
  readonly mtime: number;
  readonly data?: Buffer;
  readonly linkTarget?: string;
  readonly devMajor?: number;
  readonly devMinor?: number;
  /** PAX records written in an `x` header before the entry (order kept). */
  readonly pax?: ReadonlyArray<readonly [string, string]>;
}

export interface WriteTarOptions {
  /** 'ustar' = POSIX "ustar\0" "00"; 'gnu' = old GNU "ustar  \0" (abuild's signature tar). */
  readonly format?: 'ustar' | 'gnu';
  /** Append two zero blocks (false for abuild's "cut" control and signature tars). */
  readonly endOfArchive?: boolean;
  /** Pad the archive to a multiple of this many bytes (10240 for GNU tar's default). */
  readonly recordSize?: number;
  /**
   * apk-tools writes size and mtime as 12 octal digits without a terminating NUL (its
   * index and scripts.tar); GNU tar (abuild's signature tar) as 11 digits and a NUL.
   */
  readonly fullWidthNumbers?: boolean;
}

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

/** Writes entries in the given order. Paths and link targets too long for ustar go into PAX. */
export function writeTar(entries: Iterable<TarWriteEntry>, options: WriteTarOptions = {}): Buffer {
  const format = options.format ?? 'ustar';
  const parts: Buffer[] = [];
  let total = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    total += b.length;
  };
  for (const e of entries) {
    const pax: Array<readonly [string, string]> = [...(e.pax ?? [])];
    const pathBytes = Buffer.byteLength(e.path);
    const link = e.linkTarget ?? '';
    if (pathBytes > 100) pax.push(['path', e.path]);
    if (Buffer.byteLength(link) > 100) pax.push(['linkpath', link]);
    if (pax.length > 0) {
      const body = encodePax(pax);
      push(header({name: paxHeaderName(e.path), flag: 'x', mode: 0o644, size: body.length, mtime: e.mtime, format, uname: e.uname, gname: e.gname, full: options.fullWidthNumbers}));
      push(padBlock(body));
    }
    const data = e.type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    push(
      header({
        name: truncateUtf8(e.path, 100),
        flag: TYPEFLAG[e.type],
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: data.length,
        mtime: e.mtime,
        link: truncateUtf8(link, 100),
        uname: e.uname,
        gname: e.gname,
        devMajor: e.devMajor,
        devMinor: e.devMinor,
        format,
        full: options.fullWidthNumbers,
      }),
    );
    if (data.length > 0) push(padBlock(data));
  }
  if (options.endOfArchive ?? true) push(Buffer.alloc(BLOCK * 2));
  const rec = options.recordSize;
  if (rec && total % rec !== 0) push(Buffer.alloc(rec - (total % rec)));
  return Buffer.concat(parts, total);
}

/** GNU tar's PAX header name: `<dir>/PaxHeaders/<base>` (abuild's archives use it). */
function paxHeaderName(path: string): string {
  const trimmed = path.endsWith('/') ? path.slice(0, -1) : path;
  const slash = trimmed.lastIndexOf('/');
  const dir = slash < 0 ? '.' : trimmed.slice(0, slash);
  const base = slash < 0 ? trimmed : trimmed.slice(slash + 1);
  return truncateUtf8(`${dir}/PaxHeaders/${base}`, 100);
}

function encodePax(records: ReadonlyArray<readonly [string, string]>): Buffer {
  const out: Buffer[] = [];
  for (const [k, v] of records) {
    const rest = ` ${k}=${v}\n`;
    const restLen = Buffer.byteLength(rest);
    let len = restLen + 1;
    while (String(len).length + restLen !== len) len = String(len).length + restLen;
    out.push(Buffer.from(`${len}${rest}`));
  }
  return Buffer.concat(out);
}

function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  return Buffer.from(s).subarray(0, max).toString('utf8').replace(/\uFFFD$/, '');
}

function padBlock(b: Buffer): Buffer {
  const rem = b.length % BLOCK;
  return rem === 0 ? b : Buffer.concat([b, Buffer.alloc(BLOCK - rem)]);
}

interface HeaderFields {
  name: string;
  flag: string;
  mode: number;
  uid?: number | undefined;
  gid?: number | undefined;
  size: number;
  mtime: number;
  link?: string;
  uname?: string | undefined;
  gname?: string | undefined;
  devMajor?: number | undefined;
  devMinor?: number | undefined;
  format: 'ustar' | 'gnu';
  full?: boolean | undefined;
}

function header(f: HeaderFields): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(f.name, 0, 100, 'utf8');
  writeOctal(h, 100, 8, f.mode);
  writeOctal(h, 108, 8, f.uid ?? 0);
  writeOctal(h, 116, 8, f.gid ?? 0);
  writeOctal(h, 124, 12, f.size, f.full);
  writeOctal(h, 136, 12, f.mtime, f.full);
  h.fill(0x20, 148, 156);
  h.write(f.flag, 156, 1, 'latin1');
  if (f.link) h.write(f.link, 157, 100, 'utf8');
  if (f.format === 'gnu') {
    h.write('ustar  \0', 257, 8, 'latin1');
  } else {
    h.write('ustar\0', 257, 6, 'latin1');
    h.write('00', 263, 2, 'latin1');
  }
  if (f.uname) h.write(f.uname, 265, 32, 'utf8');
  if (f.gname) h.write(f.gname, 297, 32, 'utf8');
  if (f.format === 'ustar' || f.devMajor || f.devMinor) {
    writeOctal(h, 329, 8, f.devMajor ?? 0);
    writeOctal(h, 337, 8, f.devMinor ?? 0);
  }
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function writeOctal(h: Buffer, off: number, len: number, value: number, full = false): void {
  const s = Math.max(0, Math.floor(value)).toString(8);
  if (full && s.length <= len) {
    h.write(s.padStart(len, '0'), off, len, 'latin1');
    return;
  }
  if (s.length > len - 1) {
    // base-256 for values that do not fit (large files, far-future mtimes)
    let v = value;
    for (let i = len - 1; i > 0; i--) {
      h[off + i] = v % 256;
      v = Math.floor(v / 256);
    }
    h[off] = 0x80;
    return;
  }
  h.write(s.padStart(len - 1, '0') + '\0', off, len, 'latin1');
}
