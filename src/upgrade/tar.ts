import {createHash} from 'node:crypto';
import {closeSync, mkdirSync, openSync, readFileSync, writeSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {PsyError} from '../errors.js';
import {TarStream, TYPEFLAG, type TarEntryMeta, type TarSink} from '../tar/index.js';

/** One member unpacked into the staging folder. */
export interface TarMember {
  /** Normalised name (no leading `./`). */
  readonly name: string;
  readonly size: number;
  /** Where its bytes were written (a member kept on disk). */
  readonly path?: string;
  /** Its bytes (a member kept in memory: see TarUnpackerOptions.inMemory). */
  readonly data?: Buffer;
  /** sha256 of its bytes as they arrived. */
  readonly sha256: string;
}

/** Which names an update may hold: plain files, and folders that may appear on the way. */
export interface TarNames {
  readonly file: (name: string) => boolean;
  readonly dir: (name: string) => boolean;
}

/** A member's bytes, wherever they were kept. */
export function memberBytes(m: TarMember): Buffer {
  return m.data ?? readFileSync(m.path!);
}

export interface TarUnpackerOptions {
  /**
   * Members kept in memory instead of a file: the big ones an apply writes straight to
   * the slot's blocks, so they are not written to staging and read back twice.
   */
  readonly inMemory?: (name: string, size: number) => boolean;
  /** No member kept in memory may claim more bytes than this (the tarball's cap). */
  readonly maxMemoryMember?: number;
}

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
  readonly #stream: TarStream;
  /** The member being written, if any. */
  #fd: number | undefined;
  #error: PsyError | undefined;
  readonly #options: TarUnpackerOptions;

  constructor(dest: string, names: TarNames, what: string, options: TarUnpackerOptions = {}) {
    this.#dest = dest;
    this.#names = names;
    this.#what = what;
    this.#options = options;
    this.#stream = new TarStream({what, code: 'bad-tarball'}, (m) => this.#onEntry(m));
  }

  /** The first refusal, if any (unpacking stopped there). */
  get error(): PsyError | undefined {
    return this.#error;
  }

  write(chunk: Buffer): void {
    if (this.#error) return;
    try {
      this.#stream.write(chunk);
    } catch (err) {
      this.#closeCurrent();
      if (!(err instanceof PsyError)) throw err;
      this.#error = err;
    }
  }

  /** The members, once the whole tar has been given; throws the first refusal. */
  finish(): TarMember[] {
    if (!this.#error) {
      try {
        this.#stream.end();
      } catch (err) {
        if (!(err instanceof PsyError)) throw err;
        this.#error = err;
      }
    }
    this.#closeCurrent();
    if (this.#error) throw this.#error;
    return [...this.#members];
  }

  /** Closes a member being written (after a refusal or an early end). */
  #closeCurrent(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #bad(message: string): PsyError {
    return new PsyError('bad-tarball', `${this.#what}: ${message}`);
  }

  #onEntry(m: TarEntryMeta): TarSink | undefined {
    const raw = m.path;
    let name = raw;
    while (name.startsWith('./')) name = name.slice(2);
    if (m.type === 'directory' && (name === '' || name === '.' || name === './')) return undefined;
    if (raw.startsWith('/') || name.split('/').some((p) => p === '..')) throw this.#bad(`refusing escaping member name ${JSON.stringify(raw)}`);
    if (m.type === 'directory' && this.#names.dir(name.replace(/\/+$/, ''))) return undefined;
    if (m.type !== 'file') {
      throw this.#bad(`refusing member ${JSON.stringify(raw)} of tar type '${TYPEFLAG[m.type]}' (only plain files are accepted)`);
    }
    if (!this.#names.file(name)) throw this.#bad(`unexpected member ${JSON.stringify(raw)}`);
    if (this.#seen.has(name)) throw this.#bad(`duplicate member ${JSON.stringify(raw)}`);
    this.#seen.add(name);
    if (this.#options.inMemory?.(name, m.size)) return this.#inMemory(name, m.size);
    // names are checked above: no absolute path, no `..`, only what `names` allows
    const path = join(this.#dest, name);
    if (name.includes('/')) mkdirSync(dirname(path), {recursive: true, mode: 0o755});
    const fd = openSync(path, 'wx', 0o644);
    this.#fd = fd;
    const hash = createHash('sha256');
    return {
      data: (chunk) => {
        let w = 0;
        while (w < chunk.length) w += writeSync(fd, chunk, w, chunk.length - w);
        hash.update(chunk);
      },
      end: () => {
        this.#closeCurrent();
        this.#members.push({name, size: m.size, path, sha256: hash.digest('hex')});
      },
    };
  }

  #inMemory(name: string, size: number): TarSink {
    // the size is unverified: allocate no more than the tarball may hold
    const max = this.#options.maxMemoryMember ?? 0;
    if (size > max) throw this.#bad(`member ${JSON.stringify(name)} claims ${size} bytes, more than the ${max} the tarball may hold`);
    // Pieces that lie side by side in one shared buffer (a local tarball read whole, see
    // fetch-update) are kept as one view of it, not copied; any other piece is copied,
    // since it is handed to the hashing thread and gone from here.
    let view: Buffer | undefined;
    let data: Buffer | undefined;
    let filled = 0;
    const hash = createHash('sha256');
    return {
      data: (chunk) => {
        hash.update(chunk);
        if (data === undefined && chunk.buffer instanceof SharedArrayBuffer) {
          if (view === undefined) {
            view = chunk;
            filled = chunk.length;
            return;
          }
          if (view.buffer === chunk.buffer && view.byteOffset + view.length === chunk.byteOffset) {
            view = Buffer.from(chunk.buffer, view.byteOffset, view.length + chunk.length);
            filled += chunk.length;
            return;
          }
        }
        if (data === undefined) {
          data = Buffer.allocUnsafeSlow(size);
          if (view !== undefined) view.copy(data, 0);
          view = undefined;
        }
        filled += chunk.copy(data, filled);
      },
      end: () => {
        this.#members.push({name, size, data: data ?? view ?? Buffer.alloc(0), sha256: hash.digest('hex')});
      },
    };
  }
}
