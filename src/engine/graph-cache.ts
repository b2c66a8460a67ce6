/**
 * The analysed graph, cached beside the no-op snapshot. It is used only when the
 * snapshot check finds that nothing but input and output files changed: then the
 * config's modules, the files it read, the tools and the state log are those the graph
 * was analysed from, so the config would evaluate to the same graph, and psy skips
 * evaluating and analysing it.
 *
 * Only graphs of shell commands and groups are cached (a rule is a function, which only
 * evaluating the config gives back), and only without globs or directory outputs (the
 * snapshot refuses those anyway: stat data cannot show them change).
 *
 * The file is binary so that a cone build decodes only the targets it looks at:
 *
 *     magic "PSYGRPH2", u32 length of the header, header (JSON)
 *     u32 tables, each `count` u32 values, in the order of TABLES
 *     byte blobs: names (newline-separated), paths, target records (one JSON text each)
 *
 * The tables give each target's record offsets, its flags (wanted by the
 * snapshot's targets, group), its dependents, and an index of every input and output
 * path (sorted by bytes) to the targets that read or write it. Everything read is range
 * checked; anything out of place makes the reader return undefined, and the full check
 * decides (by evaluating the config).
 */
import {closeSync, fstatSync, openSync, readSync} from 'node:fs';
import type {TargetConfig} from './config.js';
import type {Graph, GraphInput, GraphOutput, GraphTarget, InputItem} from './graph.js';
import type {LoadedConfig} from './load-config.js';
import type {JsonValue, ToolSpec} from './rule.js';

const MAGIC = Buffer.from('PSYGRPH2', 'latin1');

/** A file path, or [target index, output index]. */
type CachedItem = string | [number, number];

interface CachedTarget {
  readonly n: string;
  readonly c?: string;
  readonly d?: string;
  readonly p?: string;
  readonly pa?: Record<string, JsonValue>;
  readonly to?: readonly ToolSpec[];
  readonly o: ReadonlyArray<readonly [string, 'file' | 'dir', string]>;
  readonly i: ReadonlyArray<readonly [string, readonly CachedItem[]]>;
  readonly dp: readonly number[];
  readonly cp: number;
}

interface Header {
  /** Pairs this file with the snapshot that names it. */
  readonly id: string;
  readonly outDir: string;
  readonly stateDir: string;
  readonly defaults: readonly string[];
  readonly pools: ReadonlyArray<readonly [string, number]>;
  readonly sourceDateEpoch: number;
  readonly targets: number;
  /** Length of each table, in u32 values, in the order of TABLES. */
  readonly tables: readonly number[];
  /** Length of each blob, in bytes, in the order of BLOBS. */
  readonly blobs: readonly number[];
}

/** recordEnd: end offsets into the records blob, one per target. */
const TABLES = ['recordEnd', 'flags', 'dependentsEnd', 'dependents', 'paths', 'pathTargets'] as const;
const BLOBS = ['names', 'paths', 'records'] as const;
/** Words per entry of the `paths` table: path start, path end, first and end index into pathTargets. */
const PATH_WORDS = 4;
const F_WANTED = 1;
const F_GROUP = 2;

export function graphCachePath(snapshotFile: string): string {
  return snapshotFile.replace(/\.snap$/, '') + '.graph';
}

/**
 * The graph as cache bytes, with `want` (the targets the snapshot covers), or undefined
 * when it cannot be cached (rules, globs).
 */
export function serializeGraph(graph: Graph, id: string, want: Uint8Array): Buffer | undefined {
  const n = graph.targets.length;
  const names: string[] = [];
  const records: Buffer[] = [];
  const recordEnd = new Uint32Array(n);
  const flags = new Uint32Array(n);
  const byPath = new Map<string, number[]>();
  const touch = (path: string, i: number) => {
    const list = byPath.get(path);
    if (list === undefined) byPath.set(path, [i]);
    else if (list[list.length - 1] !== i) list.push(i);
  };
  let recordAt = 0;
  for (const t of graph.targets) {
    const cfg = t.config;
    if (cfg.rule !== undefined) return undefined;
    const inputs: Array<[string, CachedItem[]]> = [];
    for (const input of t.inputs) {
      if (input.globs.length > 0) return undefined;
      inputs.push([input.name, input.items.map((item): CachedItem => (item.kind === 'file' ? item.path : [item.target, item.output]))]);
      for (const item of input.items) if (item.kind === 'file') touch(item.path, t.index);
    }
    for (const o of t.outputs) touch(o.path, t.index);
    const ct: CachedTarget = {
      n: t.name,
      ...(cfg.command === undefined ? {} : {c: cfg.command}),
      ...(cfg.description === undefined ? {} : {d: cfg.description}),
      ...(t.pool === undefined ? {} : {p: t.pool}),
      ...(cfg.params === undefined ? {} : {pa: cfg.params as Record<string, JsonValue>}),
      ...(cfg.tools === undefined ? {} : {to: cfg.tools}),
      o: t.outputs.map((o) => [o.name, o.kind, o.path] as const),
      i: inputs,
      dp: t.deps,
      cp: t.criticalPath,
    };
    const record = Buffer.from(JSON.stringify(ct), 'utf8');
    // Target names never hold a newline (see graph.ts).
    names.push(t.name);
    records.push(record);
    recordEnd[t.index] = recordAt += record.length;
    flags[t.index] = (want[t.index] ? F_WANTED : 0) | (cfg.command === undefined ? F_GROUP : 0);
  }
  const dependentsEnd = new Uint32Array(n);
  const dependents: number[] = [];
  for (const t of graph.targets) {
    for (const d of t.dependents) dependents.push(d);
    dependentsEnd[t.index] = dependents.length;
  }
  const sorted = [...byPath.keys()].map((p) => [p, Buffer.from(p, 'utf8')] as const).sort((a, b) => Buffer.compare(a[1], b[1]));
  const paths = new Uint32Array(sorted.length * PATH_WORDS);
  const pathTargets: number[] = [];
  const pathBytes: Buffer[] = [];
  let pathAt = 0;
  sorted.forEach(([p, bytes], k) => {
    paths[k * PATH_WORDS] = pathAt;
    paths[k * PATH_WORDS + 1] = pathAt += bytes.length;
    paths[k * PATH_WORDS + 2] = pathTargets.length;
    for (const i of byPath.get(p)!) pathTargets.push(i);
    paths[k * PATH_WORDS + 3] = pathTargets.length;
    pathBytes.push(bytes);
  });
  const tables = [recordEnd, flags, Uint32Array.from(dependentsEnd), Uint32Array.from(dependents), paths, Uint32Array.from(pathTargets)];
  const blobs = [Buffer.from(names.join('\n'), 'utf8'), Buffer.concat(pathBytes), Buffer.concat(records)];
  const header: Header = {
    id,
    outDir: graph.outDir,
    stateDir: graph.stateDir,
    defaults: graph.defaults,
    pools: [...graph.pools],
    sourceDateEpoch: graph.sourceDateEpoch,
    targets: n,
    tables: tables.map((t) => t.length),
    blobs: blobs.map((b) => b.length),
  };
  const head = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  const parts: Buffer[] = [MAGIC, len, head];
  for (const t of tables) {
    const b = Buffer.alloc(t.length * 4);
    for (let k = 0; k < t.length; k++) b.writeUInt32LE(t[k]!, k * 4);
    parts.push(b);
  }
  return Buffer.concat([...parts, ...blobs]);
}

/** A bad cache file: the caller falls back to evaluating the config. */
class CacheDamage extends Error {}

function check(ok: boolean): void {
  if (!ok) throw new CacheDamage('damaged graph cache');
}

/**
 * A cached graph, decoded on demand. Target indices are those of the analysed graph.
 * Methods throw CacheDamage on anything out of range; readers catch it.
 */
export class CachedGraph {
  readonly header: Header;
  readonly targetCount: number;
  readonly #data: Buffer;
  readonly #table: Record<(typeof TABLES)[number], number>;
  readonly #count: Record<(typeof TABLES)[number], number>;
  readonly #blob: Record<(typeof BLOBS)[number], number>;
  #names: string[] | undefined;
  #fd: number | undefined;
  #reads = 0;
  #records: Buffer | undefined;

  private constructor(data: Buffer, header: Header, at: number, fd: number, fileSize: number) {
    this.#data = data;
    this.#fd = fd;
    this.header = header;
    this.targetCount = header.targets;
    const table = {} as Record<(typeof TABLES)[number], number>;
    const count = {} as Record<(typeof TABLES)[number], number>;
    TABLES.forEach((name, k) => {
      table[name] = at;
      count[name] = header.tables[k]!;
      at += header.tables[k]! * 4;
    });
    const blob = {} as Record<(typeof BLOBS)[number], number>;
    BLOBS.forEach((name, k) => {
      blob[name] = at;
      at += header.blobs[k]!;
    });
    check(at === fileSize && blob.records === data.length);
    this.#table = table;
    this.#count = count;
    this.#blob = blob;
    const n = header.targets;
    const [recordEnd, flags, dependentsEnd, dependents, paths] = header.tables as [number, number, number, number, number, number];
    check(recordEnd === n && flags === n && dependentsEnd === n && paths % PATH_WORDS === 0 && dependents >= 0);
  }

  /** The cache in `file` if it is the one with this id, else undefined. */
  static open(file: string, id: string): CachedGraph | undefined {
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const size = fstatSync(fd).size;
      const pre = readAt(fd, 0, Math.min(size, MAGIC.length + 4));
      if (pre.length < MAGIC.length + 4 || !pre.subarray(0, MAGIC.length).equals(MAGIC)) throw new CacheDamage('not a graph cache');
      const at = MAGIC.length + 4 + pre.readUInt32LE(MAGIC.length);
      if (at > size) throw new CacheDamage('truncated');
      const header = JSON.parse(readAt(fd, MAGIC.length + 4, at - MAGIC.length - 4).toString('utf8')) as Header;
      if (header.id !== id || !Number.isInteger(header.targets) || !Array.isArray(header.tables) || header.tables.length !== TABLES.length)
        throw new CacheDamage('another graph');
      if (!Array.isArray(header.blobs) || header.blobs.length !== BLOBS.length) throw new CacheDamage('bad header');
      if (![...header.tables, ...header.blobs].every((x) => Number.isInteger(x) && x >= 0)) throw new CacheDamage('bad header');
      // Everything but the target records, which are read one by one as asked for.
      const recordsAt = at + header.tables.reduce((a, b) => a + 4 * b, 0) + header.blobs[0]! + header.blobs[1]!;
      if (recordsAt > size) throw new CacheDamage('truncated');
      const graph = new CachedGraph(readAt(fd, 0, recordsAt), header, at, fd, size);
      fd = undefined;
      return graph;
    } catch {
      return undefined;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Close the file; records not read by then cannot be read. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #u32(table: (typeof TABLES)[number], k: number): number {
    check(k >= 0 && k < this.#count[table]);
    return this.#data.readUInt32LE(this.#table[table] + 4 * k);
  }

  /** [start, end) of entry i in a table of end offsets. */
  #span(table: 'recordEnd' | 'dependentsEnd', i: number): [number, number] {
    const start = i === 0 ? 0 : this.#u32(table, i - 1);
    const end = this.#u32(table, i);
    check(start <= end);
    return [start, end];
  }

  name(i: number): string {
    const names = this.names();
    check(i >= 0 && i < names.length);
    return names[i]!;
  }

  /** Every target's name, by index. */
  names(): readonly string[] {
    if (this.#names === undefined) {
      const names = this.header.targets === 0 ? [] : this.#data.toString('utf8', this.#blob.names, this.#blob.names + this.header.blobs[0]!).split('\n');
      check(names.length === this.header.targets);
      this.#names = names;
    }
    return this.#names;
  }

  /** Every target's flags at once (see wantedIn/groupIn), for loops over all targets. */
  flags(): Uint32Array {
    const at = this.#table.flags;
    const n = this.#count.flags;
    const view = this.#data.subarray(at, at + 4 * n);
    // A typed view needs 4-byte alignment; copy otherwise.
    return view.byteOffset % 4 === 0 ? new Uint32Array(view.buffer, view.byteOffset, n) : new Uint32Array(Uint8Array.prototype.slice.call(view).buffer);
  }

  wanted(i: number): boolean {
    return (this.#u32('flags', i) & F_WANTED) !== 0;
  }

  isGroup(i: number): boolean {
    return (this.#u32('flags', i) & F_GROUP) !== 0;
  }

  dependents(i: number): number[] {
    const [s, e] = this.#span('dependentsEnd', i);
    const out: number[] = [];
    for (let k = s; k < e; k++) out.push(this.#target(this.#u32('dependents', k)));
    return out;
  }

  #target(i: number): number {
    check(Number.isInteger(i) && i >= 0 && i < this.targetCount);
    return i;
  }

  /** Targets that read or write this path (relative to the root); [] if none. */
  targetsOf(path: string): number[] {
    const needle = Buffer.from(path, 'utf8');
    const base = this.#blob.paths;
    let lo = 0;
    let hi = this.#count.paths / PATH_WORDS;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.#u32('paths', mid * PATH_WORDS);
      const e = this.#u32('paths', mid * PATH_WORDS + 1);
      check(s <= e && e <= this.header.blobs[1]!);
      const c = Buffer.compare(this.#data.subarray(base + s, base + e), needle);
      if (c === 0) {
        const out: number[] = [];
        const end = this.#u32('paths', mid * PATH_WORDS + 3);
        for (let k = this.#u32('paths', mid * PATH_WORDS + 2); k < end; k++) out.push(this.#target(this.#u32('pathTargets', k)));
        return out;
      }
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return [];
  }

  /** The target's cached record (decoded each call). */
  record(i: number): CachedTarget {
    const [s, e] = this.#span('recordEnd', i);
    check(e <= this.header.blobs[2]!);
    let bytes: Buffer;
    if (this.#records !== undefined) {
      bytes = this.#records.subarray(s, e);
    } else {
      check(this.#fd !== undefined);
      // A few records are read where they are; many, with the whole blob at once.
      if (++this.#reads > 64) {
        this.#records = readAt(this.#fd!, this.#blob.records, this.header.blobs[2]!);
        bytes = this.#records.subarray(s, e);
      } else {
        bytes = readAt(this.#fd!, this.#blob.records + s, e - s);
      }
    }
    const ct = JSON.parse(bytes.toString('utf8')) as CachedTarget;
    check(typeof ct.n === 'string' && Array.isArray(ct.o) && Array.isArray(ct.i) && Array.isArray(ct.dp) && typeof ct.cp === 'number');
    return ct;
  }

  /**
   * Graph targets for the given indices (ascending), re-indexed 0..k-1 in that order.
   * `inputsOf(i)` says whether target i needs its inputs and deps (the others get
   * none: they are settled from their records). Items and deps must point inside the
   * selection.
   */
  targets(select: readonly number[], inputsOf: (i: number) => boolean): GraphTarget[] {
    const local = new Map<number, number>();
    select.forEach((g, k) => local.set(g, k));
    const at = (g: number): number => {
      const k = local.get(this.#target(g));
      check(k !== undefined);
      return k!;
    };
    const out: GraphTarget[] = select.map((g, index) => {
      const ct = this.record(g);
      const full = inputsOf(g);
      const outputs: GraphOutput[] = ct.o.map(([name, kind, path]) => ({name, kind, path}));
      const inputs: GraphInput[] = !full
        ? []
        : ct.i.map(([name, items]) => ({
            name,
            globs: [],
            items: items.map((item): InputItem => {
              if (typeof item === 'string') return {kind: 'file', path: item};
              const [target, output] = item;
              return {kind: 'output', target: at(target), output};
            }),
          }));
      const outSpecs: Record<string, string> = {};
      const config: TargetConfig = {
        name: ct.n,
        outputs: outSpecs,
        ...(ct.c === undefined ? {} : {command: ct.c}),
        ...(ct.d === undefined ? {} : {description: ct.d}),
        ...(ct.p === undefined ? {} : {pool: ct.p}),
        ...(ct.pa === undefined ? {} : {params: ct.pa}),
        ...(ct.to === undefined ? {} : {tools: ct.to}),
      };
      return {index, name: ct.n, config, inputs, outputs, deps: full ? ct.dp.map(at) : [], dependents: [], pool: ct.p, criticalPath: ct.cp};
    });
    for (const t of out) for (const d of t.deps) out[d]!.dependents.push(t.index);
    return out;
  }

  /** A graph of targets from targets(); `select` as given to it when that was a part. */
  graph(loaded: LoadedConfig, targets: GraphTarget[], select?: readonly number[]): Graph {
    const h = this.header;
    const byName = new Map<string, GraphTarget>();
    for (const t of targets) byName.set(t.name, t);
    return {
      root: loaded.root,
      configPath: loaded.configPath,
      outDir: h.outDir,
      stateDir: h.stateDir,
      targets,
      byName,
      defaults: h.defaults,
      pools: new Map(h.pools),
      sourceDateEpoch: h.sourceDateEpoch,
      loaded,
      ...(select === undefined ? {} : {wholeIndex: select}),
    };
  }
}

function readAt(fd: number, at: number, len: number): Buffer {
  const buf = Buffer.allocUnsafe(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, at + got);
    if (n === 0) throw new CacheDamage('truncated');
    got += n;
  }
  return buf;
}

/** Whether flags (see CachedGraph.flags) mark a target wanted by the snapshot's targets. */
export function wantedIn(flags: number): boolean {
  return (flags & F_WANTED) !== 0;
}

/** Whether flags mark a group (a target without a step). */
export function groupIn(flags: number): boolean {
  return (flags & F_GROUP) !== 0;
}

export function isCacheDamage(err: unknown): boolean {
  return err instanceof CacheDamage;
}

/** The whole cached graph with this id, or undefined (missing, damaged, another id). */
export function readCachedGraph(file: string, id: string, loaded: LoadedConfig): Graph | undefined {
  const c = CachedGraph.open(file, id);
  if (c === undefined) return undefined;
  try {
    const all = Array.from({length: c.targetCount}, (_, i) => i);
    return c.graph(
      loaded,
      c.targets(all, () => true),
    );
  } catch {
    return undefined;
  } finally {
    c.close();
  }
}
