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
 */
import {readFileSync} from 'node:fs';
import type {TargetConfig} from './config.js';
import type {Graph, GraphInput, GraphOutput, GraphTarget, InputItem} from './graph.js';
import type {LoadedConfig} from './load-config.js';
import type {JsonValue, ToolSpec} from './rule.js';

const VERSION = 1;

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

interface CachedGraph {
  readonly version: number;
  /** Pairs this file with the snapshot that names it. */
  readonly id: string;
  readonly outDir: string;
  readonly stateDir: string;
  readonly defaults: readonly string[];
  readonly pools: ReadonlyArray<readonly [string, number]>;
  readonly sourceDateEpoch: number;
  readonly targets: readonly CachedTarget[];
}

export function graphCachePath(snapshotFile: string): string {
  return snapshotFile.replace(/\.snap$/, '') + '.graph.json';
}

/** The graph as cache text, or undefined when it cannot be cached (rules, globs). */
export function serializeGraph(graph: Graph, id: string): string | undefined {
  const targets: CachedTarget[] = [];
  for (const t of graph.targets) {
    const cfg = t.config;
    if (cfg.rule !== undefined) return undefined;
    const inputs: Array<[string, CachedItem[]]> = [];
    for (const input of t.inputs) {
      if (input.globs.length > 0) return undefined;
      inputs.push([input.name, input.items.map((item): CachedItem => (item.kind === 'file' ? item.path : [item.target, item.output]))]);
    }
    targets.push({
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
    });
  }
  const cached: CachedGraph = {
    version: VERSION,
    id,
    outDir: graph.outDir,
    stateDir: graph.stateDir,
    defaults: graph.defaults,
    pools: [...graph.pools],
    sourceDateEpoch: graph.sourceDateEpoch,
    targets,
  };
  return JSON.stringify(cached);
}

/** The cached graph with this id, or undefined (missing, damaged, another id). */
export function readCachedGraph(file: string, id: string, loaded: LoadedConfig): Graph | undefined {
  let c: CachedGraph;
  try {
    c = JSON.parse(readFileSync(file, 'utf8')) as CachedGraph;
    if (c.version !== VERSION || c.id !== id || !Array.isArray(c.targets)) return undefined;
    return rebuild(c, loaded);
  } catch {
    // Damaged in a way JSON.parse accepted: the full check decides.
    return undefined;
  }
}

function rebuild(c: CachedGraph, loaded: LoadedConfig): Graph | undefined {
  const n = c.targets.length;
  const targets: GraphTarget[] = new Array<GraphTarget>(n);
  for (let index = 0; index < n; index++) {
    const ct = c.targets[index]!;
    const outputs: GraphOutput[] = ct.o.map(([name, kind, path]) => ({name, kind, path}));
    const inputs: GraphInput[] = ct.i.map(([name, items]) => ({
      name,
      globs: [],
      items: items.map((item): InputItem => {
        if (typeof item === 'string') return {kind: 'file', path: item};
        const [target, output] = item;
        if (!(target >= 0 && target < n)) throw new RangeError('bad target index');
        return {kind: 'output', target, output};
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
    targets[index] = {index, name: ct.n, config, inputs, outputs, deps: ct.dp, dependents: [], pool: ct.p, criticalPath: ct.cp};
  }
  for (const t of targets) {
    for (const d of t.deps) {
      const up = targets[d];
      if (up === undefined) return undefined;
      up.dependents.push(t.index);
    }
  }
  const byName = new Map<string, GraphTarget>();
  for (const t of targets) byName.set(t.name, t);
  return {
    root: loaded.root,
    configPath: loaded.configPath,
    outDir: c.outDir,
    stateDir: c.stateDir,
    targets,
    byName,
    defaults: c.defaults,
    pools: new Map(c.pools),
    sourceDateEpoch: c.sourceDateEpoch,
    loaded,
  };
}
