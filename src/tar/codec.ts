import {PsyError} from '../errors.js';

/**
 * The one tar header codec: ustar and old-GNU headers, their checksum, octal and GNU
 * base-256 numbers, PAX extended records (per entry and global) and GNU long names.
 * Every numeric field is validated here, in the header and in PAX records, so no
 * reader hands NaN, a negative id or an unsafe integer to its caller.
 */

export const BLOCK = 512;

/** The largest PAX or GNU long-name body a reader holds in memory. */
export const MAX_EXTENSION = 1 << 20;

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

/** Who is reading (for messages) and the PsyError code its refusals carry. */
export interface TarContext {
  /** e.g. `package foo.apk`, `index APKINDEX.tar.gz`, a tarball's path. */
  readonly what: string;
  readonly code: string;
}

/** One member's header with its extensions applied (everything but the data). */
export interface TarEntryMeta {
  /** Path as stored (PAX `path`, GNU long name or ustar prefix applied), unchanged. */
  readonly path: string;
  readonly type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (07777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  readonly mtime: number;
  /** Bytes of data that follow the header. */
  readonly size: number;
  /** Symlink target, or the path a hardlink points to. */
  readonly linkTarget: string;
  readonly devMajor: number;
  readonly devMinor: number;
  /** PAX records of this entry (global ones merged in). */
  readonly pax: Readonly<Record<string, string>>;
  /** Byte offset of the member's own header in the archive. */
  readonly offset: number;
}

/** A raw header: numbers validated, no extension applied yet. */
export interface TarHeader {
  readonly name: string;
  readonly typeflag: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  readonly linkName: string;
  readonly uname: string;
  readonly gname: string;
  readonly devMajor: number;
  readonly devMinor: number;
}

/** uid_t is 32 bits and (uid_t)-1 means "no owner"; device numbers are 32 bits. */
const MAX_ID = 0xfffffffe;
const MAX_DEV = 0xffffffff;

export function tarError(ctx: TarContext, message: string): PsyError {
  return new PsyError(ctx.code, `${ctx.what}: ${message}`);
}

export function isZeroBlock(h: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

function cString(b: Uint8Array, off: number, len: number): string {
  const field = Buffer.from(b.buffer, b.byteOffset + off, len);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? len : end).toString('utf8');
}

function printable(raw: string): string {
  return JSON.stringify(raw.length > 40 ? raw.slice(0, 40) + '…' : raw);
}

/**
 * A numeric header field: octal digits (optionally space-led, NUL/space-ended) or GNU
 * base-256 (high bit of the first byte). Negative base-256 values and anything beyond
 * `max` are refused, never wrapped.
 */
function headerNumber(h: Buffer, off: number, len: number, max: number, field: string, member: string, at: number, ctx: TarContext): number {
  const bad = (raw: string) => tarError(ctx, `member ${printable(member)}: bad tar ${field} field ${printable(raw)} (header at byte ${at})`);
  const first = h[off]!;
  if (first & 0x80) {
    if (first & 0x40) throw bad('negative base-256 number');
    let v = first & 0x3f;
    for (let i = 1; i < len; i++) {
      v = v * 256 + h[off + i]!;
      if (v > max) throw bad('base-256 number too large');
    }
    return v;
  }
  const raw = h.toString('latin1', off, off + len);
  const s = raw.replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw bad(raw.replace(/\0+$/, ''));
  const v = parseInt(s, 8);
  if (v > max) throw bad(raw);
  return v;
}

/**
 * Decodes and checks one 512-byte header (not a zero block). The checksum is verified
 * first: a block that is not a tar header fails there.
 */
export function decodeHeader(h: Buffer, at: number, ctx: TarContext): TarHeader {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const magic = h.toString('latin1', 257, 263);
  let name = cString(h, 0, 100);
  // The prefix field exists only in POSIX ustar; old GNU keeps atime/ctime there.
  if (magic === 'ustar\0') {
    const prefix = cString(h, 345, 155);
    if (prefix) name = `${prefix}/${name}`;
  }
  const stored = headerNumber(h, 148, 8, 0o7777777, 'checksum', name, at, ctx);
  if (stored !== unsigned && stored !== signed) throw tarError(ctx, `tar header checksum mismatch at byte ${at}`);
  const num = (off: number, len: number, max: number, field: string) => headerNumber(h, off, len, max, field, name, at, ctx);
  const typeflag = String.fromCharCode(h[156]!);
  const device = typeflag === '3' || typeflag === '4';
  return {
    name,
    typeflag,
    mode: num(100, 8, 0o7777777, 'mode'),
    uid: num(108, 8, MAX_ID, 'uid'),
    gid: num(116, 8, MAX_ID, 'gid'),
    size: num(124, 12, Number.MAX_SAFE_INTEGER, 'size'),
    mtime: num(136, 12, Number.MAX_SAFE_INTEGER, 'mtime'),
    linkName: cString(h, 157, 100),
    uname: cString(h, 265, 32),
    gname: cString(h, 297, 32),
    // old GNU headers leave the device fields blank for anything but devices
    devMajor: device ? num(329, 8, MAX_DEV, 'devmajor') : 0,
    devMinor: device ? num(337, 8, MAX_DEV, 'devminor') : 0,
  };
}

/** The typeflag each member type is written with. */
export const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

export function entryType(flag: string): TarEntryType | undefined {
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
      return undefined;
  }
}

/** Parses PAX `len key=value\n` records; anything malformed is refused. */
export function parsePax(body: Buffer, ctx: TarContext): Record<string, string> {
  const out: Record<string, string> = {};
  const bad = () => tarError(ctx, 'malformed PAX record');
  let p = 0;
  while (p < body.length) {
    const sp = body.indexOf(0x20, p);
    if (sp < 0 || sp - p > 12) throw bad();
    const digits = body.toString('latin1', p, sp);
    if (!/^[1-9][0-9]*$/.test(digits)) throw bad();
    const len = Number(digits);
    const end = p + len;
    if (end > body.length || end <= sp + 1 || body[end - 1] !== 0x0a) throw bad();
    const rec = body.toString('utf8', sp + 1, end - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0) throw bad();
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    p = end;
  }
  return out;
}

function paxNumber(pax: Record<string, string>, key: string, max: number, member: string, ctx: TarContext): number | undefined {
  const v = pax[key];
  if (v === undefined) return undefined;
  // mtime may carry a fraction; the others are plain decimal integers
  const m = (key === 'mtime' ? /^([0-9]{1,16})(\.[0-9]+)?$/ : /^([0-9]{1,16})$/).exec(v);
  const n = m ? Number(m[1]) : NaN;
  if (!(n <= max)) throw tarError(ctx, `member ${printable(member)}: bad PAX ${key} ${printable(v)}`);
  return n;
}

/**
 * The extension state between headers: pending PAX records, global ones, GNU long
 * name and link. Feed it every extension member, then `resolve` the next real header.
 */
export class TarExtensions {
  #global: Record<string, string> = {};
  #pending: Record<string, string> | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;

  /** Whether a typeflag is an extension header rather than a member. */
  static isExtension(flag: string): boolean {
    return flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K';
  }

  add(flag: string, body: Buffer, ctx: TarContext): void {
    switch (flag) {
      case 'x':
        this.#pending = {...(this.#pending ?? {}), ...parsePax(body, ctx)};
        break;
      case 'g':
        this.#global = {...this.#global, ...parsePax(body, ctx)};
        break;
      case 'L':
        this.#longName = cString(body, 0, body.length);
        break;
      case 'K':
        this.#longLink = cString(body, 0, body.length);
        break;
    }
  }

  /** The member a header describes, with its extensions applied and validated. */
  resolve(h: TarHeader, at: number, ctx: TarContext): TarEntryMeta {
    const pax = {...this.#global, ...(this.#pending ?? {})};
    const path = pax['path'] ?? this.#longName ?? h.name;
    const linkTarget = pax['linkpath'] ?? this.#longLink ?? h.linkName;
    this.#pending = undefined;
    this.#longName = undefined;
    this.#longLink = undefined;
    const type = entryType(h.typeflag);
    if (!type) throw tarError(ctx, `member ${printable(path)}: unsupported tar entry type ${JSON.stringify(h.typeflag)} (header at byte ${at})`);
    const size = paxNumber(pax, 'size', Number.MAX_SAFE_INTEGER, path, ctx) ?? h.size;
    if (size !== h.size) throw tarError(ctx, `member ${printable(path)}: PAX size ${size} disagrees with the header's ${h.size}`);
    return {
      path,
      type,
      mode: h.mode & 0o7777,
      uid: paxNumber(pax, 'uid', MAX_ID, path, ctx) ?? h.uid,
      gid: paxNumber(pax, 'gid', MAX_ID, path, ctx) ?? h.gid,
      uname: pax['uname'] ?? h.uname,
      gname: pax['gname'] ?? h.gname,
      mtime: paxNumber(pax, 'mtime', Number.MAX_SAFE_INTEGER, path, ctx) ?? h.mtime,
      size,
      linkTarget,
      devMajor: h.devMajor,
      devMinor: h.devMinor,
      pax,
      offset: at,
    };
  }
}

// ---------------------------------------------------------------- encoding

export interface HeaderFields {
  readonly name: string;
  readonly typeflag: string;
  readonly mode: number;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  readonly size: number;
  readonly mtime: number;
  readonly linkName?: string | undefined;
  readonly uname?: string | undefined;
  readonly gname?: string | undefined;
  readonly devMajor?: number | undefined;
  readonly devMinor?: number | undefined;
  /** ustar prefix (POSIX format only). */
  readonly prefix?: string | undefined;
}

export interface EncodeOptions {
  /** 'ustar' = POSIX "ustar\0" "00"; 'gnu' = old GNU "ustar  \0" (abuild's signature tar). */
  readonly format: 'ustar' | 'gnu';
  /**
   * apk-tools writes size and mtime as 12 octal digits without a terminating NUL (its
   * index and scripts.tar); GNU tar as 11 digits and a NUL.
   */
  readonly fullWidthNumbers?: boolean | undefined;
}

/** Encodes one header block with its checksum. Names must already fit their fields. */
export function encodeHeader(f: HeaderFields, o: EncodeOptions): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(f.name, 0, 100, 'utf8');
  writeNumber(h, 100, 8, f.mode, 'mode');
  writeNumber(h, 108, 8, f.uid ?? 0, 'uid');
  writeNumber(h, 116, 8, f.gid ?? 0, 'gid');
  writeNumber(h, 124, 12, f.size, 'size', o.fullWidthNumbers);
  writeNumber(h, 136, 12, f.mtime, 'mtime', o.fullWidthNumbers);
  h.fill(0x20, 148, 156);
  h.write(f.typeflag, 156, 1, 'latin1');
  if (f.linkName) h.write(f.linkName, 157, 100, 'utf8');
  if (o.format === 'gnu') {
    h.write('ustar  \0', 257, 8, 'latin1');
  } else {
    h.write('ustar\0', 257, 6, 'latin1');
    h.write('00', 263, 2, 'latin1');
  }
  if (f.uname) h.write(f.uname, 265, 32, 'utf8');
  if (f.gname) h.write(f.gname, 297, 32, 'utf8');
  if (o.format === 'ustar' || f.devMajor || f.devMinor) {
    writeNumber(h, 329, 8, f.devMajor ?? 0, 'devmajor');
    writeNumber(h, 337, 8, f.devMinor ?? 0, 'devminor');
  }
  if (o.format === 'ustar' && f.prefix) h.write(f.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

function writeNumber(h: Buffer, off: number, len: number, given: number, field: string, full = false): void {
  const value = Math.floor(given);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new PsyError('tar-field', `tar: ${field} ${given} is not a non-negative number`);
  }
  const s = value.toString(8);
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

/** Encodes PAX records, each `len key=value\n` with its own length counted. */
export function encodePax(records: ReadonlyArray<readonly [string, string]>): Buffer {
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
