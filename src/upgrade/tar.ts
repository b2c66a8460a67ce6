import {createHash, type Hash} from 'node:crypto';
import {closeSync, mkdirSync, openSync, writeSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {PsyError} from '../errors.js';

/** One member unpacked into the staging folder. */
export interface TarMember {
  /** Normalised name (no leading `./`). */
  readonly name: string;
  readonly size: number;
  /** Where its bytes were written. */
  readonly path: string;
  /** sha256 of its bytes as they arrived. */
  readonly sha256: string;
}

/** Which names an update may hold: plain files, and folders that may appear on the way. */
export interface TarNames {
  readonly file: (name: string) => boolean;
  readonly dir: (name: string) => boolean;
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

const MAX_EXTENSION = 1 << 20;

type State =
  | {readonly kind: 'header'}
  | {readonly kind: 'data'; remaining: number; pad: number; fd: number; readonly hash: Hash; readonly member: Omit<TarMember, 'sha256'>}
  | {readonly kind: 'extension'; readonly type: string; readonly data: Buffer; filled: number; pad: number}
  | {readonly kind: 'padding'; remaining: number}
  | {readonly kind: 'end'};

/**
 * Unpacks an uncompressed tar (ustar, pax, GNU long names) as its bytes arrive, in one
 * pass, into a private folder: only plain files whose names `names` accepts, refusing
 * absolute paths, `..`, links, devices and duplicates. The bytes are not trusted yet
 * (their signature is checked by the caller over the same pass), so a refusal is only
 * recorded: the first one is kept, nothing more is written, and `finish` reports it
 * once the caller has had its say about the signature.
 */
export class TarUnpacker {
  readonly #dest: string;
  readonly #names: TarNames;
  readonly #what: string;
  readonly #members: TarMember[] = [];
  readonly #seen = new Set<string>();
  readonly #header = Buffer.alloc(512);
  #headerFilled = 0;
  #state: State = {kind: 'header'};
  /** Byte offset in the tar of the next byte given to write. */
  #pos = 0;
  #pax = new Map<string, string>();
  #longName: string | undefined;
  #error: PsyError | undefined;

  constructor(dest: string, names: TarNames, what: string) {
    this.#dest = dest;
    this.#names = names;
    this.#what = what;
  }

  /** The first refusal, if any (unpacking stopped there). */
  get error(): PsyError | undefined {
    return this.#error;
  }

  write(chunk: Buffer): void {
    if (this.#error) return;
    try {
      this.#consume(chunk);
    } catch (err) {
      this.#closeCurrent();
      if (!(err instanceof PsyError)) throw err;
      this.#error = err;
    }
  }

  /** The members, once the whole tar has been given; throws the first refusal. */
  finish(): TarMember[] {
    if (!this.#error) {
      const s = this.#state;
      if (s.kind === 'header' && this.#headerFilled > 0) this.#error = this.#bad(`truncated tar header at byte ${this.#pos - this.#headerFilled}`);
      if (s.kind === 'data' && s.remaining > 0) this.#error = this.#bad(`member data ends early at byte ${this.#pos}`);
      if (s.kind === 'extension' && s.filled < s.data.length) this.#error = this.#bad(`truncated tar extension header at byte ${this.#pos}`);
    }
    this.#closeCurrent();
    if (this.#error) throw this.#error;
    return [...this.#members];
  }

  /** Closes a member being written (after a refusal or an early end). */
  #closeCurrent(): void {
    if (this.#state.kind === 'data') closeSync(this.#state.fd);
    this.#state = {kind: 'end'};
  }

  #bad(message: string): PsyError {
    return new PsyError('bad-tarball', `${this.#what}: ${message}`);
  }

  #consume(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const s = this.#state;
      const avail = chunk.length - at;
      switch (s.kind) {
        case 'end':
          this.#pos += avail;
          return;
        case 'header': {
          const n = Math.min(avail, 512 - this.#headerFilled);
          chunk.copy(this.#header, this.#headerFilled, at, at + n);
          this.#headerFilled += n;
          at += n;
          this.#pos += n;
          if (this.#headerFilled === 512) {
            this.#headerFilled = 0;
            this.#onHeader();
          }
          break;
        }
        case 'data': {
          const n = Math.min(avail, s.remaining);
          let w = 0;
          while (w < n) w += writeSync(s.fd, chunk, at + w, n - w);
          s.hash.update(chunk.subarray(at, at + n));
          s.remaining -= n;
          at += n;
          this.#pos += n;
          if (s.remaining === 0) {
            closeSync(s.fd);
            this.#members.push({...s.member, sha256: s.hash.digest('hex')});
            this.#state = s.pad > 0 ? {kind: 'padding', remaining: s.pad} : {kind: 'header'};
          }
          break;
        }
        case 'extension': {
          const n = Math.min(avail, s.data.length - s.filled);
          chunk.copy(s.data, s.filled, at, at + n);
          s.filled += n;
          at += n;
          this.#pos += n;
          if (s.filled === s.data.length) {
            if (s.type === 'x') this.#pax = parsePax(s.data);
            if (s.type === 'L') this.#longName = s.data.toString('utf8').replace(/\0+$/, '');
            this.#state = s.pad > 0 ? {kind: 'padding', remaining: s.pad} : {kind: 'header'};
          }
          break;
        }
        case 'padding': {
          const n = Math.min(avail, s.remaining);
          s.remaining -= n;
          at += n;
          this.#pos += n;
          if (s.remaining === 0) this.#state = {kind: 'header'};
          break;
        }
      }
    }
  }

  #onHeader(): void {
    const h = this.#header;
    const headerAt = this.#pos - 512;
    if (h.every((b) => b === 0)) {
      this.#state = {kind: 'end'};
      return;
    }
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== octal(h, 148, 8, this.#what)) throw this.#bad(`tar header checksum mismatch at byte ${headerAt}`);
    const type = String.fromCharCode(h[156]!);
    const size = octal(h, 124, 12, this.#what);
    const pad = Math.ceil(size / 512) * 512 - size;
    if (type === 'x' || type === 'L' || type === 'g') {
      if (size > MAX_EXTENSION) throw this.#bad('oversized tar extension header');
      this.#state = {kind: 'extension', type, data: Buffer.alloc(size), filled: 0, pad};
      return;
    }
    const prefix = field(h, 345, 155);
    let name = this.#pax.get('path') ?? this.#longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    const realSize = this.#pax.has('size') ? Number(this.#pax.get('size')) : size;
    this.#pax = new Map();
    this.#longName = undefined;
    const raw = name;
    while (name.startsWith('./')) name = name.slice(2);
    const skip = () => {
      this.#state = size + pad > 0 ? {kind: 'padding', remaining: size + pad} : {kind: 'header'};
    };
    if (type === '5' && (name === '' || name === '.' || name === './')) return skip();
    if (raw.startsWith('/') || name.split('/').some((p) => p === '..')) throw this.#bad(`refusing escaping member name "${raw}"`);
    if (type === '5' && this.#names.dir(name.replace(/\/+$/, ''))) return skip();
    if (type !== '0' && type !== '\0' && type !== '7') {
      throw this.#bad(`refusing member "${raw}" of tar type '${type}' (only plain files are accepted)`);
    }
    if (!this.#names.file(name)) throw this.#bad(`unexpected member "${raw}"`);
    if (this.#seen.has(name)) throw this.#bad(`duplicate member "${raw}"`);
    if (realSize !== size) throw this.#bad(`member "${raw}" has a pax size that differs from its header`);
    this.#seen.add(name);
    // names are checked above: no absolute path, no `..`, only what `names` allows
    const path = join(this.#dest, name);
    if (name.includes('/')) mkdirSync(dirname(path), {recursive: true, mode: 0o755});
    const fd = openSync(path, 'wx', 0o644);
    const hash = createHash('sha256');
    if (size === 0) {
      closeSync(fd);
      this.#members.push({name, size, path, sha256: hash.digest('hex')});
      return skip();
    }
    this.#state = {kind: 'data', remaining: size, pad, fd, hash, member: {name, size, path}};
  }
}
