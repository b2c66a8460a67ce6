/**
 * Build state: one append-only binary log per state folder, replayed into maps on
 * start (last record wins).
 *
 * File: 8-byte magic, then records `[u32 length][u32 xxh32(payload)][payload]`, payload
 * starting with a type byte. Records are appended with write(2) as they happen and not
 * fsynced: a killed process loses nothing that was written; a power cut may leave a torn
 * tail, which the checksum detects. Loading stops at the first bad record, warns, and
 * (when the log is opened for writing) truncates the file to the last good record.
 * The log is rewritten (new file + rename) when it holds 3× more records than live ones.
 *
 * Lazy opening: when the caller knows the log is exactly as a finished build left it
 * (its size, mtime and inode are those a no-op snapshot recorded after that build, and
 * the build lock is held), every record in it was checked then. Opening it `vouched`
 * only frames the records and indexes them by a hash of their key; a record is decoded,
 * and its checksum verified, when something asks for its key. A cone build asks for a
 * handful of targets and files out of tens of thousands. Anything unexpected (framing
 * that does not end at the file's end, a bad checksum) falls back to the full replay.
 *
 * A target record is appended only after the target's outputs have been renamed into
 * place, so a crash at any moment leaves either the old record (and the target is found
 * stale by its key or its output hashes) or the new one with its outputs complete.
 */
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  renameSync,
  writeFileSync,
  writeSync,
  writevSync,
} from 'node:fs';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {checksum32} from './hash.js';

/** A failed write to the log (a full disk, a quota, a read-only mount) as one line naming the file. */
function writeFailure(path: string, doing: string, err: unknown, outcome = 'what was built is not recorded and will be built again'): PsyError {
  const e = err as NodeJS.ErrnoException;
  const causes: Record<string, string> = {
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EROFS: 'read-only file system',
    EIO: 'input/output error',
    EFBIG: 'file too large',
  };
  const cause = e.code !== undefined && causes[e.code] !== undefined ? `${causes[e.code]}, ${e.code}` : (e.code ?? String(e.message ?? e).split('\n')[0]);
  return new PsyError('state-write', `state log ${path}: cannot ${doing} (${cause}); ${outcome}`, {cause: err});
}

export interface FileRecord {
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly ino: number;
  /** Date.now() when the stat was taken; too close to mtime means "racy". */
  readonly recordedAt: number;
  readonly hash: string;
}

export interface TargetRecord {
  readonly name: string;
  /** The action key the outputs were made with. */
  readonly key: string;
  /** Hash of the rule identity or the command text. */
  readonly action: string;
  readonly params: string;
  /** Tool versions as `command=version` lines. */
  readonly tools: string;
  /** Content hash of every input item, in graph order (for explain). */
  readonly inputs: readonly string[];
  /** Output paths (relative to the root) and their content hashes. */
  readonly outputs: ReadonlyArray<{readonly path: string; readonly hash: string}>;
  readonly start: number;
  readonly end: number;
}

export interface ToolRecord {
  /** Resolved executable path. */
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino: number;
  readonly version: string;
}

const MAGIC = Buffer.from('PSYLOG2\n', 'latin1');
const T_FILE = 1;
const T_TARGET = 2;
const T_TOOL = 3;
const T_FORGET = 4;

class Encoder {
  buf = Buffer.allocUnsafe(256);
  pos = 0;
  #room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  u8(v: number): this {
    this.#room(1);
    this.buf[this.pos++] = v;
    return this;
  }
  u32(v: number): this {
    this.#room(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
    return this;
  }
  f64(v: number): this {
    this.#room(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }
  str(v: string): this {
    const n = Buffer.byteLength(v);
    this.#room(4 + n);
    this.buf.writeUInt32LE(n, this.pos);
    this.buf.write(v, this.pos + 4);
    this.pos += 4 + n;
    return this;
  }
  /** A 16-hex-digit hash, stored without a length. */
  hash(v: string): this {
    if (v.length !== 16) return this.u8(0).str(v);
    this.#room(16);
    this.buf.write(v, this.pos, 'latin1');
    this.pos += 16;
    return this;
  }
  /** Frame the payload: length, checksum, payload. */
  frame(): Buffer {
    const payload = this.buf.subarray(0, this.pos);
    const out = Buffer.allocUnsafe(8 + payload.length);
    out.writeUInt32LE(payload.length, 0);
    out.writeUInt32LE(checksum32(payload), 4);
    payload.copy(out, 8);
    return out;
  }
}

/** Raw slicing methods Buffer has but does not declare: no per-call encoding lookup. */
interface FastSlice {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}

class Decoder {
  pos = 0;
  end = 0;
  buf: Buffer & FastSlice = Buffer.alloc(0) as Buffer & FastSlice;
  reset(buf: Buffer, start: number, end: number): this {
    this.buf = buf as Buffer & FastSlice;
    this.pos = start;
    this.end = end;
    return this;
  }
  #need(n: number): void {
    if (this.pos + n > this.end) throw new RangeError('record overrun');
  }
  u8(): number {
    this.#need(1);
    return this.buf[this.pos++]!;
  }
  u32(): number {
    this.#need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  f64(): number {
    this.#need(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
  str(): string {
    const n = this.u32();
    this.#need(n);
    const v = this.buf.utf8Slice(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  hash(): string {
    this.#need(1);
    if (this.buf[this.pos] === 0) {
      this.pos++;
      return this.str();
    }
    this.#need(16);
    const v = this.buf.latin1Slice(this.pos, this.pos + 16);
    this.pos += 16;
    return v;
  }
}

const decoder = new Decoder();

export interface StateLogOptions {
  /** Open without writing: nothing is appended, a damaged tail is not truncated. */
  readonly readOnly?: boolean;
  readonly warn?: (message: string) => void;
  /**
   * The log's (size, mtime, inode) as a finished build left it: if the file still has
   * them, records are decoded only when asked for (see the top of this file).
   */
  readonly vouched?: readonly [number, number, number];
}

/** The part of Map the engine uses on the log's record tables. */
export interface RecordMap<V> {
  get(key: string): V | undefined;
  has(key: string): boolean;
  set(key: string, value: V): unknown;
  delete(key: string): boolean;
  keys(): IterableIterator<string>;
  values(): IterableIterator<V>;
  readonly size: number;
}

const enum Space {
  Files = 0,
  Targets = 1,
  Tools = 2,
}

function spaceOf(type: number): Space | -1 {
  switch (type) {
    case T_FILE:
      return Space.Files;
    case T_TARGET:
    case T_FORGET:
      return Space.Targets;
    case T_TOOL:
      return Space.Tools;
    default:
      return -1;
  }
}

/** FNV-1a over a record key's bytes, salted by its key space. */
function keyHash(buf: Uint8Array, start: number, end: number, space: Space): number {
  let h = (0x811c9dc5 ^ space) | 0;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 16777619);
  return h;
}

/**
 * Where an index reads records from: the log read whole, or the log file itself (record
 * by record; after many reads, whole at once).
 */
class RecordSource {
  #reads = 0;

  constructor(
    readonly fd: number,
    public data: Buffer | undefined,
  ) {}

  read(at: number, len: number): Buffer {
    if (this.data !== undefined && at + len <= this.data.length) return this.data.subarray(at, at + len);
    if (++this.#reads === 256) this.data = readAll(this.fd);
    if (this.data !== undefined && at + len <= this.data.length) return this.data.subarray(at, at + len);
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const n = readSync(this.fd, buf, got, len - got, at + got);
      if (n === 0) throw new RangeError('record past the end of the log');
      got += n;
    }
    return buf;
  }
}

function readAll(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, buf, got, size - got, got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

const INDEX_MAGIC = Buffer.from('PSYLIDX1', 'latin1');
const INDEX_HEAD = 64;

function int32s(buf: Buffer, at: number, n: number): Int32Array {
  // A typed view needs 4-byte alignment; copy otherwise.
  return (buf.byteOffset + at) % 4 === 0
    ? new Int32Array(buf.buffer, buf.byteOffset + at, n)
    : new Int32Array(Uint8Array.prototype.slice.call(buf, at, at + 4 * n).buffer);
}

/**
 * Records framed but not decoded: a chained hash table from key hash to record number,
 * newest record first, so the first record with the right key is the live one.
 *
 * It is saved beside the log (`log.idx`) so that the next cone build need not read the
 * log at all: header (magic, the log size it covers, the log's inode, the last covered
 * record's start and checksum, counts), then the table. It is used only for a log the
 * snapshot vouches for, with the same inode, at least that long, and whose last covered
 * record still has that checksum; records after the covered part are framed from the
 * file. Nothing in it is trusted beyond that: a chain must lead to older records, and
 * every record found through it must sit in the log with its key and checksum, or the
 * whole log is replayed. (A chain that skips a record can only make psy find an older
 * record of a key, which content comparison treats as stale or as matching the
 * content it describes: never a wrong answer, at worst a rebuild.)
 */
class RecordIndex {
  #heads: Int32Array;
  #next: Int32Array;
  #start: Uint32Array;
  #len: Uint32Array;
  #hash: Int32Array;
  #mask: number;
  count = 0;
  /** Distinct keys, counting two keys with the same hash once (a lower bound). */
  distinct = 0;
  /** Checksum of the newest record. */
  lastSum = 0;
  /** Records read from a saved index (0: framed from the log), and the log size it covers. */
  readonly saved: number;
  #covered = 0;
  source: RecordSource;

  private constructor(source: RecordSource, capacity: number, saved: number, tableSize = 0) {
    this.source = source;
    this.saved = saved;
    let size = tableSize;
    if (size < capacity) for (size = 16; size < capacity * 2;) size <<= 1;
    this.#mask = size - 1;
    this.#heads = new Int32Array(size).fill(-1);
    this.#next = new Int32Array(capacity);
    this.#start = new Uint32Array(capacity);
    this.#len = new Uint32Array(capacity);
    this.#hash = new Int32Array(capacity);
  }

  /** Add a record (payload start and length, key hash) as the newest. */
  add(start: number, len: number, h: number, sum: number): void {
    if (this.count === this.#next.length) this.#grow();
    const r = this.count++;
    const b = h & this.#mask;
    let seen = false;
    for (let o = this.#heads[b]!; o !== -1; o = this.#next[o]!) {
      if (this.#hash[o] === h) {
        seen = true;
        break;
      }
    }
    if (!seen) this.distinct++;
    this.#start[r] = start;
    this.#len[r] = len;
    this.#hash[r] = h;
    this.#next[r] = this.#heads[b]!;
    this.#heads[b] = r;
    this.lastSum = sum;
  }

  #grow(): void {
    const cap = Math.max(16, this.#next.length * 2);
    const grow = <T extends Int32Array | Uint32Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.#start = grow(this.#start, (n) => new Uint32Array(n));
    this.#len = grow(this.#len, (n) => new Uint32Array(n));
    this.#hash = grow(this.#hash, (n) => new Int32Array(n));
    this.#next = new Int32Array(cap);
    let size = this.#heads.length;
    while (size < cap * 2) size <<= 1;
    this.#mask = size - 1;
    this.#heads = new Int32Array(size).fill(-1);
    // Re-chain oldest first, so each chain still starts at its newest record.
    for (let r = 0; r < this.count; r++) {
      const b = this.#hash[r]! & this.#mask;
      this.#next[r] = this.#heads[b]!;
      this.#heads[b] = r;
    }
  }

  /**
   * Frame the records in data[from, data.length), which start at log offset `base` +
   * from; false unless they end exactly at its end.
   */
  frame(data: Buffer, from: number, base: number): boolean {
    let pos = from;
    while (pos + 8 <= data.length) {
      const len = data.readUInt32LE(pos);
      const start = pos + 8;
      const end = start + len;
      if (len < 5 || end > data.length) return false;
      const space = spaceOf(data[start]!);
      const kend = start + 5 + data.readUInt32LE(start + 1);
      if (space === -1 || kend > end) return false;
      this.add(base + start, len, keyHash(data, start + 5, kend, space), data.readUInt32LE(pos + 4));
      pos = end;
    }
    return pos === data.length;
  }

  /** The whole log framed; undefined unless its records end exactly at its end. */
  static scan(fd: number, data: Buffer): RecordIndex | undefined {
    const index = new RecordIndex(new RecordSource(fd, data), Math.max(16, data.length >> 7), 0);
    return index.frame(data, MAGIC.length, 0) ? index : undefined;
  }

  /**
   * The saved index `saved`, completed with the records after the part it covers;
   * 'damaged' when it does not check out, 'stale' when it is for another log (or the
   * log was cut back), undefined when the records after it do not frame.
   */
  static load(saved: Buffer, fd: number, logSize: number, logIno: number): RecordIndex | 'damaged' | 'stale' | undefined {
    if (saved.length < INDEX_HEAD || !saved.subarray(0, INDEX_MAGIC.length).equals(INDEX_MAGIC)) return 'damaged';
    const covered = saved.readDoubleLE(16);
    const ino = saved.readDoubleLE(24);
    const lastStart = saved.readDoubleLE(32);
    const lastSum = saved.readUInt32LE(40);
    const count = saved.readUInt32LE(44);
    const size = saved.readUInt32LE(48);
    const distinct = saved.readUInt32LE(52);
    if (size < 16 || (size & (size - 1)) !== 0 || saved.length !== INDEX_HEAD + 4 * size + 16 * count) return 'damaged';
    if (ino !== logIno || covered > logSize || covered < MAGIC.length) return 'stale';
    const source = new RecordSource(fd, undefined);
    if (count > 0) {
      const sum = source.read(lastStart - 4, 4).readUInt32LE(0);
      if (sum !== lastSum) return 'stale';
    }
    const tail = logSize > covered ? source.read(covered, logSize - covered) : Buffer.alloc(0);
    // The saved table as it is, unless the records after it would fill it.
    const index = new RecordIndex(source, count + 64 + (tail.length >> 6), count, size);
    let at = INDEX_HEAD;
    const heads = int32s(saved, at, size);
    at += 4 * size;
    const next = int32s(saved, at, count);
    at += 4 * count;
    const start = int32s(saved, at, count);
    at += 4 * count;
    const len = int32s(saved, at, count);
    at += 4 * count;
    const hash = int32s(saved, at, count);
    if (size === index.#heads.length) {
      index.#heads.set(heads);
      index.#next.set(next);
    } else {
      // Sized for more records than before: chain again.
      for (let r = 0; r < count; r++) {
        const b = hash[r]! & index.#mask;
        index.#next[r] = index.#heads[b]!;
        index.#heads[b] = r;
      }
    }
    index.#start.set(new Uint32Array(start.buffer, start.byteOffset, count));
    index.#len.set(new Uint32Array(len.buffer, len.byteOffset, count));
    index.#hash.set(hash);
    index.count = count;
    index.distinct = distinct;
    index.lastSum = lastSum;
    index.#covered = covered;
    return index.frame(tail, 0, covered) ? index : undefined;
  }

  /** The index as saved for a log of `logSize` bytes with inode `logIno`. */
  encode(logSize: number, logIno: number): Buffer {
    const n = this.count;
    let size = 16;
    while (size < n * 2) size <<= 1;
    if (size < this.#heads.length) {
      // Grown past what it holds: chain again in a table of the saved size.
      this.#mask = size - 1;
      this.#heads = new Int32Array(size).fill(-1);
      for (let r = 0; r < n; r++) {
        const b = this.#hash[r]! & this.#mask;
        this.#next[r] = this.#heads[b]!;
        this.#heads[b] = r;
      }
    }
    size = this.#heads.length;
    const out = Buffer.alloc(INDEX_HEAD + 4 * size + 16 * n);
    INDEX_MAGIC.copy(out, 0);
    out.writeDoubleLE(logSize, 16);
    out.writeDoubleLE(logIno, 24);
    out.writeDoubleLE(n > 0 ? this.#start[n - 1]! : 0, 32);
    out.writeUInt32LE(this.lastSum, 40);
    out.writeUInt32LE(n, 44);
    out.writeUInt32LE(size, 48);
    out.writeUInt32LE(this.distinct, 52);
    let at = INDEX_HEAD;
    for (const a of [this.#heads, this.#next.subarray(0, n), this.#start.subarray(0, n), this.#len.subarray(0, n), this.#hash.subarray(0, n)]) {
      out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
      at += a.byteLength;
    }
    return out;
  }

  /** The payload of the newest record with this key, undefined if none; throws when it does not check out. */
  find(space: Space, key: string): Buffer | undefined {
    const kb = Buffer.from(key, 'utf8');
    const h = keyHash(kb, 0, kb.length, space);
    let r = this.#heads[h & this.#mask]!;
    if (r < -1 || r >= this.count) throw new RangeError('index chain out of range');
    for (; r !== -1;) {
      const older = this.#next[r]!;
      // Chains lead to older records, so every walk ends.
      if (older < -1 || older >= r) throw new RangeError('index chain out of order');
      const start = this.#start[r]!;
      const len = this.#len[r]!;
      if (this.#hash[r] !== h || len < 5 + kb.length) {
        r = older;
        continue;
      }
      if (start < MAGIC.length + 8 || (r < this.saved && start + len > this.#covered)) throw new RangeError('index points outside what it covers');
      const frame = this.source.read(start - 8, len + 8);
      if (frame.readUInt32LE(0) !== len) throw new RangeError('index points at no record');
      const payload = frame.subarray(8);
      if (spaceOf(payload[0]!) !== space || payload.readUInt32LE(1) !== kb.length || !kb.equals(payload.subarray(5, 5 + kb.length))) {
        r = older;
        continue;
      }
      if (checksum32(payload) !== frame.readUInt32LE(4)) throw new RangeError('bad checksum');
      return payload;
    }
    return undefined;
  }
}

/**
 * A record table that starts empty and asks the index on a miss; `null` marks a key
 * known to have no live record. Iterating or counting first replays the whole log.
 */
class LazyRecords<V> implements RecordMap<V> {
  readonly #known = new Map<string, V | null>();
  readonly #lookup: (key: string) => V | undefined;
  readonly #materialize: () => Map<string, V>;
  #full: Map<string, V> | undefined;

  constructor(lookup: (key: string) => V | undefined, materialize: () => Map<string, V>) {
    this.#lookup = lookup;
    this.#materialize = materialize;
  }

  get(key: string): V | undefined {
    if (this.#full !== undefined) return this.#full.get(key);
    const k = this.#known.get(key);
    if (k !== undefined) return k ?? undefined;
    const v = this.#lookup(key);
    // The lookup may have switched the log to a full replay.
    if (this.#full !== undefined) return (this.#full as Map<string, V>).get(key);
    this.#known.set(key, v ?? null);
    return v;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  set(key: string, value: V): this {
    if (this.#full !== undefined) this.#full.set(key, value);
    else this.#known.set(key, value);
    return this;
  }

  delete(key: string): boolean {
    if (this.#full !== undefined) return this.#full.delete(key);
    const had = this.get(key) !== undefined;
    if (this.#full !== undefined) return (this.#full as Map<string, V>).delete(key);
    this.#known.set(key, null);
    return had;
  }

  keys(): IterableIterator<string> {
    return this.full().keys();
  }

  values(): IterableIterator<V> {
    return this.full().values();
  }

  get size(): number {
    return this.full().size;
  }

  /** Every live record: the whole log replayed, then what this run changed. */
  full(): Map<string, V> {
    if (this.#full === undefined) {
      const m = this.#materialize();
      for (const [k, v] of this.#known) {
        if (v === null) m.delete(k);
        else m.set(k, v);
      }
      this.#full = m;
    }
    return this.#full;
  }
}

interface Tables {
  readonly files: Map<string, FileRecord>;
  readonly targets: Map<string, TargetRecord>;
  readonly tools: Map<string, ToolRecord>;
}

type Decoded =
  | {readonly space: Space.Files; readonly key: string; readonly value: FileRecord}
  | {readonly space: Space.Targets; readonly key: string; readonly value: TargetRecord | null}
  | {readonly space: Space.Tools; readonly key: string; readonly value: ToolRecord};

function decodeRecord(d: Decoder): Decoded {
  const type = d.u8();
  switch (type) {
    case T_FILE: {
      const path = d.str();
      const value: FileRecord = {path, size: d.f64(), mtimeMs: d.f64(), ctimeMs: d.f64(), ino: d.f64(), recordedAt: d.f64(), hash: d.hash()};
      return {space: Space.Files, key: path, value};
    }
    case T_TARGET: {
      const name = d.str();
      const key = d.hash();
      const action = d.hash();
      const params = d.str();
      const tools = d.str();
      const nIn = d.u32();
      const inputs: string[] = new Array<string>(nIn);
      for (let i = 0; i < nIn; i++) inputs[i] = d.hash();
      const nOut = d.u32();
      const outputs: Array<{path: string; hash: string}> = new Array(nOut);
      for (let i = 0; i < nOut; i++) outputs[i] = {path: d.str(), hash: d.hash()};
      const start = d.f64();
      const end = d.f64();
      return {space: Space.Targets, key: name, value: {name, key, action, params, tools, inputs, outputs, start, end}};
    }
    case T_TOOL: {
      const path = d.str();
      return {space: Space.Tools, key: path, value: {path, size: d.f64(), mtimeMs: d.f64(), ino: d.f64(), version: d.str()}};
    }
    case T_FORGET:
      return {space: Space.Targets, key: d.str(), value: null};
    default:
      throw new RangeError(`unknown record type ${type}`);
  }
}

/** Replays records into tables; returns the offset just past the last good record. */
function replay(data: Buffer, t: Tables): {good: number; records: number} {
  let pos = MAGIC.length;
  let records = 0;
  while (pos + 8 <= data.length) {
    const len = data.readUInt32LE(pos);
    const sum = data.readUInt32LE(pos + 4);
    const start = pos + 8;
    const end = start + len;
    if (len === 0 || end > data.length) break;
    if (checksum32(data.subarray(start, end)) !== sum) break;
    let r: Decoded;
    try {
      r = decodeRecord(decoder.reset(data, start, end));
    } catch {
      break;
    }
    switch (r.space) {
      case Space.Files:
        t.files.set(r.key, r.value);
        break;
      case Space.Targets:
        if (r.value === null) t.targets.delete(r.key);
        else t.targets.set(r.key, r.value);
        break;
      case Space.Tools:
        t.tools.set(r.key, r.value);
        break;
    }
    records++;
    pos = end;
  }
  return {good: pos, records};
}

export class StateLog {
  readonly files: RecordMap<FileRecord>;
  readonly targets: RecordMap<TargetRecord>;
  readonly tools: RecordMap<ToolRecord>;
  readonly path: string;
  #fd: number | undefined;
  #records = 0;
  #pending: Buffer[] = [];
  /** Set once an append failed: nothing more is written. */
  #failure: PsyError | undefined;
  readonly #readOnly: boolean;
  /** Set while records are decoded on demand. */
  #index: RecordIndex | undefined;
  #source: RecordSource | undefined;
  #replayed: Tables | undefined;
  /** Records and size of the log when it was opened lazily. */
  #indexed = 0;
  #openSize = 0;
  /** Current size of the log file (lazily opened, writable). */
  #size = 0;
  /** The saved index is missing or far behind: save one after this run. */
  #indexBehind = false;
  readonly #warn: ((message: string) => void) | undefined;

  private constructor(path: string, readOnly: boolean, warn: ((message: string) => void) | undefined, lazy: {index: RecordIndex; size: number} | undefined) {
    this.path = path;
    this.#readOnly = readOnly;
    this.#warn = warn;
    if (lazy === undefined) {
      this.files = new Map();
      this.targets = new Map();
      this.tools = new Map();
      return;
    }
    this.#index = lazy.index;
    this.#source = lazy.index.source;
    this.#records = lazy.index.count;
    this.#indexed = lazy.index.count;
    this.#openSize = lazy.size;
    this.#size = lazy.size;
    // Save an index when none was read, or when many records were framed past it.
    this.#indexBehind = lazy.index.count - lazy.index.saved > Math.max(1000, lazy.index.saved >> 3);
    this.files = new LazyRecords(
      (k) => this.#find(Space.Files, k) as FileRecord | undefined,
      () => this.#fullTables().files,
    );
    this.targets = new LazyRecords(
      (k) => this.#find(Space.Targets, k) as TargetRecord | undefined,
      () => this.#fullTables().targets,
    );
    this.tools = new LazyRecords(
      (k) => this.#find(Space.Tools, k) as ToolRecord | undefined,
      () => this.#fullTables().tools,
    );
  }

  static open(dir: string, options: StateLogOptions = {}): StateLog {
    const path = join(dir, 'log');
    const readOnly = options.readOnly === true;
    if (options.vouched !== undefined) {
      const lazy = StateLog.#openLazily(dir, path, readOnly, options.vouched, options.warn);
      if (lazy !== undefined) return lazy;
    }
    let data: Buffer | undefined;
    try {
      data = readFileSync(path);
    } catch {
      data = undefined;
    }
    const log = new StateLog(path, readOnly, options.warn, undefined);
    let good = 0;
    if (data !== undefined && data.length >= MAGIC.length && data.subarray(0, MAGIC.length).equals(MAGIC)) {
      const r = replay(data, log as unknown as Tables);
      good = r.good;
      log.#records = r.records;
      if (good < data.length) {
        options.warn?.(
          `state log ${log.path}: ignored a damaged tail of ${data.length - good} bytes (an interrupted write); the affected targets will rebuild`,
        );
      }
    } else if (data !== undefined && data.length > 0) {
      options.warn?.(`state log ${log.path}: not a psy state log; starting from empty state`);
    }
    if (!log.#readOnly) {
      mkdirSync(dir, {recursive: true});
      if (good === 0) {
        // A new log: an index of the old one must not be taken for it.
        rmSync(indexPath(log.path), {force: true});
        try {
          log.#fd = openSync(log.path, 'w');
          writeSync(log.#fd, MAGIC);
        } catch (err) {
          throw writeFailure(log.path, 'start a new log', err);
        }
      } else {
        log.#fd = openSync(log.path, 'r+');
        if (data !== undefined && good < data.length) ftruncateSync(log.#fd, good);
        // Appends go to the end: reopen in append mode after truncation.
        closeSync(log.#fd);
        log.#fd = openSync(log.path, 'a');
      }
    }
    return log;
  }

  /**
   * Open a log the snapshot vouches for (same size, mtime and inode) without replaying
   * it: through its saved index, or by framing it; undefined when it is not as vouched
   * for or does not frame (the caller replays it).
   */
  static #openLazily(
    dir: string,
    path: string,
    readOnly: boolean,
    vouched: readonly [number, number, number],
    warn: ((message: string) => void) | undefined,
  ): StateLog | undefined {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return undefined;
    }
    let index: RecordIndex | undefined;
    try {
      const st = fstatSync(fd);
      const [size, mtime, ino] = vouched;
      if (st.size !== size || st.mtimeMs !== mtime || st.ino !== ino || size < MAGIC.length) {
        closeSync(fd);
        return undefined;
      }
      let saved: Buffer | undefined;
      try {
        saved = readFileSync(indexPath(path));
      } catch {
        saved = undefined;
      }
      if (saved !== undefined) {
        const loaded = RecordIndex.load(saved, fd, size, ino);
        if (loaded === 'damaged') warn?.(`state log index ${indexPath(path)} is damaged; reading the whole log`);
        if (typeof loaded === 'object') index = loaded;
      }
      if (index === undefined) {
        const data = readFileSync(path);
        if (data.length === size && data.subarray(0, MAGIC.length).equals(MAGIC)) index = RecordIndex.scan(fd, data);
      }
    } catch {
      index = undefined;
    }
    if (index === undefined) {
      closeSync(fd);
      return undefined;
    }
    const log = new StateLog(path, readOnly, warn, {index, size: vouched[0]});
    if (!readOnly) {
      mkdirSync(dir, {recursive: true});
      log.#fd = openSync(path, 'a');
    }
    return log;
  }

  /**
   * Save the index of a lazily opened log when it is missing or far behind, so the
   * next cone build need not read the log. Best effort: a failure costs only speed.
   */
  saveIndex(): void {
    const index = this.#index;
    if (index === undefined || this.#readOnly || !this.#indexBehind || this.#fd === undefined) return;
    this.flush();
    try {
      const st = fstatSync(this.#fd);
      // Something else wrote the log (it holds the lock; this should not happen): no index.
      if (st.size !== this.#size) return;
      const file = indexPath(this.path);
      writeFileSync(`${file}.new`, index.encode(this.#size, st.ino));
      renameSync(`${file}.new`, file);
      this.#indexBehind = false;
    } catch {
      // The next lazy open frames the log instead.
    }
  }

  /** Whether records are decoded on demand (the log was opened vouched for). */
  get lazy(): boolean {
    return this.#index !== undefined;
  }

  /** How a lazily opened log was indexed: from its saved index, or by framing the whole log. */
  get indexedFrom(): 'saved index' | 'log' | undefined {
    return this.#index === undefined ? undefined : this.#index.saved > 0 ? 'saved index' : 'log';
  }

  #find(space: Space, key: string): FileRecord | TargetRecord | ToolRecord | undefined {
    const index = this.#index;
    if (index === undefined) return this.#fullTables()[space === Space.Files ? 'files' : space === Space.Targets ? 'targets' : 'tools'].get(key);
    try {
      const payload = index.find(space, key);
      if (payload === undefined) return undefined;
      const r = decodeRecord(decoder.reset(payload, 0, payload.length));
      if (r.space !== space || r.key !== key || decoder.pos !== payload.length) throw new RangeError('record does not decode');
      return r.value ?? undefined;
    } catch {
      // Not the log the snapshot vouched for after all: replay it as a whole.
      this.#warn?.(`state log ${this.path}: a record did not check out; replaying the whole log`);
      this.#index = undefined;
      for (const t of [this.files, this.targets, this.tools] as Array<LazyRecords<unknown>>) t.full();
      return this.#fullTables()[space === Space.Files ? 'files' : space === Space.Targets ? 'targets' : 'tools'].get(key);
    }
  }

  /** The whole log replayed (once), for iteration, counting and compaction. */
  #fullTables(): Tables {
    if (this.#replayed === undefined) {
      const t: Tables = {files: new Map(), targets: new Map(), tools: new Map()};
      // The log as it was opened; what this run appended is in the tables already.
      const data = this.#source!.read(0, this.#openSize);
      const r = replay(data, t);
      // Records this run appended stay counted on top.
      this.#records += r.records - this.#indexed;
      if (r.good < data.length) {
        this.#warn?.(`state log ${this.path}: ignored ${data.length - r.good} bytes after a damaged record; the affected targets will rebuild`);
      }
      this.#replayed = t;
    }
    return this.#replayed;
  }

  /** Cache a file's stat data and hash; written with the next target record. */
  putFile(r: FileRecord): void {
    this.files.set(r.path, r);
    if (this.#readOnly) return;
    this.#pending.push(encodeFile(r));
  }

  putTool(r: ToolRecord): void {
    this.tools.set(r.path, r);
    if (this.#readOnly) return;
    const e = new Encoder().u8(T_TOOL).str(r.path).f64(r.size).f64(r.mtimeMs).f64(r.ino).str(r.version);
    this.#pending.push(e.frame());
  }

  /** Record a finished target (call only once its outputs are in place). */
  putTarget(r: TargetRecord): void {
    this.targets.set(r.name, r);
    if (this.#readOnly) return;
    this.#pending.push(encodeTarget(r));
    this.flush();
  }

  /** Forget a target (its outputs were removed). */
  forgetTarget(name: string): void {
    if (!this.targets.delete(name) || this.#readOnly) return;
    this.#pending.push(new Encoder().u8(T_FORGET).str(name).frame());
    this.flush();
  }

  flush(): void {
    if (this.#fd === undefined || this.#pending.length === 0) return;
    const bufs = this.#pending;
    this.#pending = [];
    // After a failed append the file may end in a torn record, which hides everything
    // after it from the next replay: write nothing more.
    if (this.#failure !== undefined) throw this.#failure;
    this.#records += bufs.length;
    const index = this.#index;
    if (index !== undefined) {
      // Keep the index whole for saving: the records go where the file ends.
      for (const b of bufs) {
        const start = this.#size + 8;
        index.add(start, b.length - 8, keyHash(b, 13, 13 + b.readUInt32LE(9), spaceOf(b[8]!) as Space), b.readUInt32LE(4));
        this.#size += b.length;
      }
    }
    try {
      let off = 0;
      while (off < bufs.length) {
        // writev takes at most IOV_MAX (1024) buffers.
        writevSync(this.#fd, bufs.slice(off, off + 1024));
        off += 1024;
      }
    } catch (err) {
      this.#failure = writeFailure(this.path, 'append to it', err);
      throw this.#failure;
    }
  }

  get liveRecords(): number {
    return this.files.size + this.targets.size + this.tools.size;
  }

  get totalRecords(): number {
    return this.#records + this.#pending.length;
  }

  /** Rewrite the log with live records only when it has grown 3× past them. */
  compactIfNeeded(): boolean {
    if (this.#readOnly || this.totalRecords <= 1000) return false;
    // Opened lazily: the distinct keys seen while indexing bound the live records from
    // above (up to the few this run added), so most builds need no replay to decide.
    const index = this.#index;
    if (index !== undefined && this.totalRecords <= 3 * (index.distinct + this.totalRecords - index.count)) return false;
    if (this.totalRecords <= 3 * this.liveRecords) return false;
    this.compact();
    return true;
  }

  compact(): void {
    if (this.#readOnly || this.#fd === undefined) return;
    this.#pending = [];
    if (this.#failure !== undefined) return;
    const tmp = `${this.path}.new`;
    const bufs: Buffer[] = [MAGIC];
    for (const r of this.files.values()) bufs.push(encodeFile(r));
    for (const r of this.tools.values()) {
      bufs.push(new Encoder().u8(T_TOOL).str(r.path).f64(r.size).f64(r.mtimeMs).f64(r.ino).str(r.version).frame());
    }
    for (const r of this.targets.values()) bufs.push(encodeTarget(r));
    try {
      const fd = openSync(tmp, 'w');
      try {
        for (let off = 0; off < bufs.length; off += 1024) writevSync(fd, bufs.slice(off, off + 1024));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      // The log itself is whole; only its rewrite failed.
      rmSync(tmp, {force: true});
      throw writeFailure(tmp, 'rewrite the log', err, 'the log is kept as it was');
    }
    // The index describes the old file.
    rmSync(indexPath(this.path), {force: true});
    this.#indexBehind = false;
    renameSync(tmp, this.path);
    closeSync(this.#fd);
    this.#fd = openSync(this.path, 'a');
    this.#records = bufs.length - 1;
  }

  close(): void {
    // A failed log was reported where it failed; closing drops what is pending.
    if (this.#failure === undefined) this.flush();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
    if (this.#source !== undefined) closeSync(this.#source.fd);
    this.#source = undefined;
  }
}

function indexPath(logPath: string): string {
  return `${logPath}.idx`;
}

function encodeFile(r: FileRecord): Buffer {
  return new Encoder().u8(T_FILE).str(r.path).f64(r.size).f64(r.mtimeMs).f64(r.ctimeMs).f64(r.ino).f64(r.recordedAt).hash(r.hash).frame();
}

function encodeTarget(r: TargetRecord): Buffer {
  const e = new Encoder().u8(T_TARGET).str(r.name).hash(r.key).hash(r.action).str(r.params).str(r.tools);
  e.u32(r.inputs.length);
  for (const h of r.inputs) e.hash(h);
  e.u32(r.outputs.length);
  for (const o of r.outputs) e.str(o.path).hash(o.hash);
  return e.f64(r.start).f64(r.end).frame();
}
