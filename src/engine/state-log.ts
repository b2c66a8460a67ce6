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
 * A target record is appended only after the target's outputs have been renamed into
 * place, so a crash at any moment leaves either the old record (and the target is found
 * stale by its key or its output hashes) or the new one with its outputs complete.
 */
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
  writevSync,
} from 'node:fs';
import {join} from 'node:path';
import {checksum32} from './hash.js';

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
}

export class StateLog {
  readonly files = new Map<string, FileRecord>();
  readonly targets = new Map<string, TargetRecord>();
  readonly tools = new Map<string, ToolRecord>();
  readonly path: string;
  #fd: number | undefined;
  #records = 0;
  #pending: Buffer[] = [];
  readonly #readOnly: boolean;

  private constructor(path: string, readOnly: boolean) {
    this.path = path;
    this.#readOnly = readOnly;
  }

  static open(dir: string, options: StateLogOptions = {}): StateLog {
    const log = new StateLog(join(dir, 'log'), options.readOnly === true);
    let data: Buffer | undefined;
    try {
      data = readFileSync(log.path);
    } catch {
      data = undefined;
    }
    let good = 0;
    if (data !== undefined && data.length >= MAGIC.length && data.subarray(0, MAGIC.length).equals(MAGIC)) {
      good = log.#replay(data);
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
        log.#fd = openSync(log.path, 'w');
        writeSync(log.#fd, MAGIC);
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

  /** Replays records; returns the offset just past the last good record. */
  #replay(data: Buffer): number {
    let pos = MAGIC.length;
    while (pos + 8 <= data.length) {
      const len = data.readUInt32LE(pos);
      const sum = data.readUInt32LE(pos + 4);
      const start = pos + 8;
      const end = start + len;
      if (len === 0 || end > data.length) break;
      if (checksum32(data.subarray(start, end)) !== sum) break;
      try {
        this.#apply(decoder.reset(data, start, end));
      } catch {
        break;
      }
      this.#records++;
      pos = end;
    }
    return pos;
  }

  #apply(d: Decoder): void {
    const type = d.u8();
    switch (type) {
      case T_FILE: {
        const path = d.str();
        this.files.set(path, {
          path,
          size: d.f64(),
          mtimeMs: d.f64(),
          ctimeMs: d.f64(),
          ino: d.f64(),
          recordedAt: d.f64(),
          hash: d.hash(),
        });
        return;
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
        this.targets.set(name, {name, key, action, params, tools, inputs, outputs, start, end});
        return;
      }
      case T_TOOL: {
        const path = d.str();
        this.tools.set(path, {path, size: d.f64(), mtimeMs: d.f64(), ino: d.f64(), version: d.str()});
        return;
      }
      case T_FORGET:
        this.targets.delete(d.str());
        return;
      default:
        throw new RangeError(`unknown record type ${type}`);
    }
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
    this.#records += bufs.length;
    let off = 0;
    while (off < bufs.length) {
      // writev takes at most IOV_MAX (1024) buffers.
      writevSync(this.#fd, bufs.slice(off, off + 1024));
      off += 1024;
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
    if (this.#readOnly || this.totalRecords <= 1000 || this.totalRecords <= 3 * this.liveRecords) {
      return false;
    }
    this.compact();
    return true;
  }

  compact(): void {
    if (this.#readOnly || this.#fd === undefined) return;
    this.#pending = [];
    const tmp = `${this.path}.new`;
    const fd = openSync(tmp, 'w');
    const bufs: Buffer[] = [MAGIC];
    for (const r of this.files.values()) bufs.push(encodeFile(r));
    for (const r of this.tools.values()) {
      bufs.push(new Encoder().u8(T_TOOL).str(r.path).f64(r.size).f64(r.mtimeMs).f64(r.ino).str(r.version).frame());
    }
    for (const r of this.targets.values()) bufs.push(encodeTarget(r));
    for (let off = 0; off < bufs.length; off += 1024) writevSync(fd, bufs.slice(off, off + 1024));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.path);
    closeSync(this.#fd);
    this.#fd = openSync(this.path, 'a');
    this.#records = bufs.length - 1;
  }

  close(): void {
    this.flush();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

function encodeFile(r: FileRecord): Buffer {
  return new Encoder()
    .u8(T_FILE)
    .str(r.path)
    .f64(r.size)
    .f64(r.mtimeMs)
    .f64(r.ctimeMs)
    .f64(r.ino)
    .f64(r.recordedAt)
    .hash(r.hash)
    .frame();
}

function encodeTarget(r: TargetRecord): Buffer {
  const e = new Encoder().u8(T_TARGET).str(r.name).hash(r.key).hash(r.action).str(r.params).str(r.tools);
  e.u32(r.inputs.length);
  for (const h of r.inputs) e.hash(h);
  e.u32(r.outputs.length);
  for (const o of r.outputs) e.str(o.path).hash(o.hash);
  return e.f64(r.start).f64(r.end).frame();
}
