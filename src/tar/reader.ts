import {open} from 'node:fs/promises';
import {BLOCK, MAX_EXTENSION, TarExtensions, decodeHeader, isZeroBlock, tarError, type TarContext, type TarEntryMeta} from './codec.js';

/** Where one member's data goes; `end` is called once all of it has arrived. */
export interface TarSink {
  data(chunk: Buffer): void;
  end(): void;
}

export interface TarStreamOptions {
  /** Refuse an archive that ends without an end-of-archive block (default false). */
  readonly requireEnd?: boolean;
}

type State =
  | {readonly kind: 'header'}
  | {readonly kind: 'data'; remaining: number; pad: number; readonly sink: TarSink | undefined}
  | {readonly kind: 'extension'; readonly flag: string; readonly body: Buffer; filled: number; pad: number}
  | {readonly kind: 'end'};

/**
 * Reads a tar as its bytes arrive, in one pass and bounded memory: each member's header
 * is given to `onEntry`, which returns where the data goes (or nothing to skip it).
 * Extension bodies are held up to MAX_EXTENSION bytes; member data is never buffered.
 */
export class TarStream {
  readonly #ctx: TarContext;
  readonly #onEntry: (e: TarEntryMeta) => TarSink | undefined;
  readonly #options: TarStreamOptions;
  readonly #ext = new TarExtensions();
  readonly #header = Buffer.alloc(BLOCK);
  #headerFilled = 0;
  #state: State = {kind: 'header'};
  /** Byte offset in the tar of the next byte given to write. */
  #pos = 0;

  constructor(ctx: TarContext, onEntry: (e: TarEntryMeta) => TarSink | undefined, options: TarStreamOptions = {}) {
    this.#ctx = ctx;
    this.#onEntry = onEntry;
    this.#options = options;
  }

  /** Whether the end-of-archive block has been read. */
  get ended(): boolean {
    return this.#state.kind === 'end';
  }

  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const s = this.#state;
      const avail = chunk.length - at;
      switch (s.kind) {
        case 'end':
          this.#pos += avail;
          return;
        case 'header': {
          const n = Math.min(avail, BLOCK - this.#headerFilled);
          chunk.copy(this.#header, this.#headerFilled, at, at + n);
          this.#headerFilled += n;
          at += n;
          this.#pos += n;
          if (this.#headerFilled === BLOCK) {
            this.#headerFilled = 0;
            this.#onHeader();
          }
          break;
        }
        case 'data': {
          const n = Math.min(avail, s.remaining);
          if (n > 0) s.sink?.data(chunk.subarray(at, at + n));
          s.remaining -= n;
          at += n;
          this.#pos += n;
          if (s.remaining === 0) {
            const skip = Math.min(chunk.length - at, s.pad);
            s.pad -= skip;
            at += skip;
            this.#pos += skip;
            if (s.pad === 0) {
              this.#state = {kind: 'header'};
              s.sink?.end();
            }
          }
          break;
        }
        case 'extension': {
          const n = Math.min(avail, s.body.length - s.filled);
          chunk.copy(s.body, s.filled, at, at + n);
          s.filled += n;
          at += n;
          this.#pos += n;
          if (s.filled === s.body.length) {
            this.#ext.add(s.flag, s.body, this.#ctx);
            // the padding is skipped like a member's
            this.#state = s.pad > 0 ? {kind: 'data', remaining: 0, pad: s.pad, sink: undefined} : {kind: 'header'};
          }
          break;
        }
      }
    }
  }

  /** Checks that the archive did not stop in the middle of something. */
  end(): void {
    const s = this.#state;
    const bad = (m: string) => tarError(this.#ctx, m);
    if (s.kind === 'header' && this.#headerFilled > 0) throw bad(`truncated tar header at byte ${this.#pos - this.#headerFilled}`);
    if (s.kind === 'data' && (s.remaining > 0 || s.pad > 0)) throw bad(`truncated tar member: data ends early at byte ${this.#pos}`);
    if (s.kind === 'extension') throw bad(`truncated tar extension header at byte ${this.#pos}`);
    if (s.kind === 'header' && this.#options.requireEnd) {
      throw bad('tar archive ends without end-of-archive blocks (truncated)');
    }
  }

  #onHeader(): void {
    const h = this.#header;
    const at = this.#pos - BLOCK;
    if (isZeroBlock(h)) {
      this.#state = {kind: 'end'};
      return;
    }
    const raw = decodeHeader(h, at, this.#ctx);
    const pad = Math.ceil(raw.size / BLOCK) * BLOCK - raw.size;
    if (TarExtensions.isExtension(raw.typeflag)) {
      if (raw.size > MAX_EXTENSION) throw tarError(this.#ctx, `oversized tar extension header at byte ${at} (${raw.size} bytes)`);
      if (raw.size === 0) this.#ext.add(raw.typeflag, Buffer.alloc(0), this.#ctx);
      else this.#state = {kind: 'extension', flag: raw.typeflag, body: Buffer.alloc(raw.size), filled: 0, pad};
      return;
    }
    const meta = this.#ext.resolve(raw, at, this.#ctx);
    const sink = this.#onEntry(meta);
    if (meta.size === 0) {
      sink?.end();
      return;
    }
    this.#state = {kind: 'data', remaining: meta.size, pad, sink};
  }
}

/** A member read from a tar held in memory. */
export interface TarEntry extends TarEntryMeta {
  /** File content (empty for anything but regular files). */
  readonly data: Buffer;
}

export interface ReadTarOptions {
  /** Accept a tar that ends without end-of-archive blocks (abuild's "cut" control tars). */
  readonly allowMissingEnd?: boolean;
}

const EMPTY = Buffer.alloc(0);

/** Reads every entry of an uncompressed tar held in memory (data are views of `buf`). */
export function readTar(buf: Buffer, context: TarContext | string, options: ReadTarOptions = {}): TarEntry[] {
  const ctx = typeof context === 'string' ? {what: context, code: 'bad-tar'} : context;
  const entries: TarEntry[] = [];
  const stream = new TarStream(
    ctx,
    (meta) => {
      const chunks: Buffer[] = [];
      return {
        data: (c) => void chunks.push(c),
        end: () => {
          const data = meta.type !== 'file' ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          entries.push({...meta, data});
        },
      };
    },
    {requireEnd: !options.allowMissingEnd},
  );
  stream.write(buf);
  stream.end();
  return entries;
}

/**
 * Reads small members (e.g. `kernel.version`) out of a tar file without unpacking it:
 * walks the headers and seeks over the data. Names are compared without a leading
 * `./` or `/`; members over `maxSize` bytes are not read.
 */
export async function readTarFileMembers(path: string, wanted: readonly string[], ctx: TarContext, maxSize = 1 << 16): Promise<Map<string, Buffer>> {
  const strip = (name: string) => name.replace(/^\.\//, '').replace(/^\/+/, '');
  const want = new Set(wanted.map(strip));
  const found = new Map<string, Buffer>();
  const fh = await open(path, 'r');
  try {
    const ext = new TarExtensions();
    const header = Buffer.alloc(BLOCK);
    const read = async (length: number, position: number): Promise<Buffer> => {
      const buf = Buffer.alloc(length);
      const {bytesRead} = await fh.read(buf, 0, length, position);
      if (bytesRead < length) throw tarError(ctx, `truncated tar member at byte ${position}`);
      return buf;
    };
    let offset = 0;
    for (;;) {
      const {bytesRead} = await fh.read(header, 0, BLOCK, offset);
      if (bytesRead === 0) break;
      if (bytesRead < BLOCK) throw tarError(ctx, `truncated tar header at byte ${offset}`);
      if (isZeroBlock(header)) break;
      const raw = decodeHeader(header, offset, ctx);
      const dataOffset = offset + BLOCK;
      if (TarExtensions.isExtension(raw.typeflag)) {
        if (raw.size > MAX_EXTENSION) throw tarError(ctx, `oversized tar extension header at byte ${offset}`);
        ext.add(raw.typeflag, await read(raw.size, dataOffset), ctx);
      } else {
        const meta = ext.resolve(raw, offset, ctx);
        const key = strip(meta.path);
        if (meta.type === 'file' && want.has(key) && meta.size <= maxSize) found.set(key, await read(meta.size, dataOffset));
      }
      offset = dataOffset + Math.ceil(raw.size / BLOCK) * BLOCK;
      if (found.size === want.size) break;
    }
  } finally {
    await fh.close();
  }
  return found;
}
