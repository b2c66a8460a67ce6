import {crc32, gzipSync, inflateRawSync} from 'node:zlib';
import {PsyError} from '../errors.js';

/** One gzip member of a concatenated stream: where its compressed bytes are, and what they hold. */
export interface GzipMember {
  /** Offset of the member's first header byte in the whole buffer. */
  readonly offset: number;
  /** Compressed length including header and trailer. */
  readonly length: number;
  /** The decompressed bytes. */
  readonly data: Buffer;
}

const FHCRC = 2;
const FEXTRA = 4;
const FNAME = 8;
const FCOMMENT = 16;

/**
 * Documented inflation ceilings, for members nothing declares a size for: a signature
 * tar holds one signature (a few hundred bytes); a control tar holds .PKGINFO and
 * scripts; an APKINDEX body is about 5 MiB for Alpine's largest repository.
 */
export const MAX_SIGNATURE_INFLATED = 1 << 20;
export const MAX_CONTROL_INFLATED = 16 << 20;
export const MAX_INDEX_INFLATED = 128 << 20;

/**
 * Inflates the one gzip member that starts at `offset`, refusing to produce more than
 * `maxOutput` bytes: zlib stops as soon as the output passes the limit, so a bomb costs
 * at most that much memory. Returns where the member ends (APK signatures and checksums
 * cover the compressed bytes of one member, so the borders matter). CRC-32 and length
 * trailers are checked.
 */
export function inflateGzipMember(buf: Buffer, offset: number, what: string, maxOutput: number, label = 'gzip member'): GzipMember {
  let p = offset;
  const start = p;
  if (buf[p] !== 0x1f || (p + 1 < buf.length && buf[p + 1] !== 0x8b) || (p + 2 < buf.length && buf[p + 2] !== 8)) {
    throw new PsyError('apk-corrupt', `${what}: not a gzip stream at byte ${p}`);
  }
  if (buf.length - p < 18) throw truncated(what);
  const flags = buf[p + 3]!;
  p += 10;
  if (flags & FEXTRA) {
    if (p + 2 > buf.length) throw truncated(what);
    p += 2 + buf.readUInt16LE(p);
  }
  if (flags & FNAME) p = skipZeroTerminated(buf, p, what);
  if (flags & FCOMMENT) p = skipZeroTerminated(buf, p, what);
  if (flags & FHCRC) p += 2;
  if (p >= buf.length) throw truncated(what);
  let data: Buffer;
  let consumed: number;
  try {
    const r = inflateRawSync(buf.subarray(p), {info: true, maxOutputLength: Math.max(1, maxOutput)}) as unknown as {
      buffer: Buffer;
      engine: {bytesWritten: number};
    };
    data = r.buffer;
    consumed = r.engine.bytesWritten;
  } catch (err) {
    if ((err as {code?: unknown}).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new PsyError('apk-too-large', `${what}: ${label} at byte ${start} inflates to more than ${maxOutput} bytes (refused before using more memory)`);
    }
    const msg = err instanceof Error ? err.message : String(err);
    throw new PsyError('apk-corrupt', `${what}: damaged gzip member at byte ${start} (${msg})`);
  }
  p += consumed;
  if (p + 8 > buf.length) throw truncated(what);
  const crc = buf.readUInt32LE(p);
  const isize = buf.readUInt32LE(p + 4);
  p += 8;
  if (crc32(data) >>> 0 !== crc || data.length >>> 0 !== isize) {
    throw new PsyError('apk-corrupt', `${what}: gzip member at byte ${start} fails its CRC check (damaged bytes)`);
  }
  return {offset: start, length: p - start, data};
}

/**
 * Splits concatenated gzip members and inflates each (at most `maxOutput` bytes each).
 * zlib.gunzipSync joins members and hides their borders; this keeps them.
 */
export function splitGzipMembers(buf: Buffer, what: string, maxMembers = Infinity, maxOutput = MAX_INDEX_INFLATED): GzipMember[] {
  const members: GzipMember[] = [];
  let p = 0;
  while (p < buf.length) {
    if (members.length >= maxMembers) {
      throw new PsyError('apk-corrupt', `${what}: more than ${maxMembers} gzip members (trailing data at byte ${p})`);
    }
    const m = inflateGzipMember(buf, p, what, maxOutput);
    members.push(m);
    p += m.length;
  }
  if (members.length === 0) throw new PsyError('apk-corrupt', `${what}: empty file`);
  return members;
}

function skipZeroTerminated(buf: Buffer, p: number, what: string): number {
  const end = buf.indexOf(0, p);
  if (end < 0) throw truncated(what);
  return end + 1;
}

function truncated(what: string): PsyError {
  return new PsyError('apk-corrupt', `${what}: truncated gzip stream`);
}

/**
 * One gzip member with the header abuild writes (`gzip -n`: no name, mtime 0, OS=unix),
 * so the bytes only depend on the content.
 */
export function gzipMember(data: Buffer, level = 9): Buffer {
  const out = gzipSync(data, {level});
  // zlib writes OS=3 and mtime 0 already; XFL follows the level. Force abuild's header.
  out[8] = level === 9 ? 2 : level === 1 ? 4 : 0;
  out[9] = 3;
  return out;
}
