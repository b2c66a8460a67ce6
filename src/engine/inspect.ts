/**
 * Read-only views of a project for explain, query, targets and graph, plus clean.
 * They analyse the config and replay the state log without taking the build lock
 * (except clean, which changes outputs and state).
 */
import {join} from 'node:path';
import {rmSync} from 'node:fs';
import {build} from './build.js';
import {Builder, describeAction} from './builder.js';
import type {BuildEvent} from './events.js';
import {FileHasher} from './file-hasher.js';
import {analyze, closure, unknownTarget, type Graph, type GraphTarget} from './graph.js';
import {initHash} from './hash.js';
import {loadConfig} from './load-config.js';
import {BuildLock} from './lock.js';
import {StateLog} from './state-log.js';
import {ToolVersions} from './tools.js';

export interface Project {
  readonly graph: Graph;
  readonly log: StateLog;
  readonly files: FileHasher;
  readonly tools: ToolVersions;
}

export async function openProject(options: {cwd: string; configPath?: string | undefined; warn?: (m: string) => void}): Promise<Project> {
  const hashReady = initHash();
  const loaded = await loadConfig({cwd: options.cwd, ...(options.configPath === undefined ? {} : {configPath: options.configPath})});
  const graph = analyze(loaded);
  await hashReady;
  const log = StateLog.open(graph.stateDir, {readOnly: true, ...(options.warn === undefined ? {} : {warn: options.warn})});
  return {graph, log, files: new FileHasher(graph.root, log), tools: new ToolVersions(log, process.env['PATH'])};
}

export function requireTarget(graph: Graph, name: string): GraphTarget {
  const t = graph.byName.get(name);
  if (t === undefined) throw unknownTarget(graph, name);
  return t;
}

/** Dry-run verdicts (target → first reason) for a set of targets and their deps. */
export async function staleReasons(p: Project, names: readonly string[]): Promise<Map<string, string>> {
  const want = closure(p.graph, names);
  const reasons = new Map<string, string>();
  const builder = new Builder({
    graph: p.graph,
    want,
    log: p.log,
    files: p.files,
    tools: p.tools,
    logger: {
      event(e: BuildEvent) {
        if (e.type === 'would-run') reasons.set(e.target, e.reason);
      },
    },
    jobs: 1,
    keepGoing: 1,
    dryRun: true,
    signal: undefined,
    env: process.env,
    tmpRoot: join(p.graph.root, p.graph.outDir, '.psy-tmp'),
  });
  await builder.run();
  return reasons;
}

export interface Explanation {
  readonly target: string;
  readonly stale: boolean;
  /** The chain from the target to the root cause: [{target, reason}, ...]. */
  readonly chain: ReadonlyArray<{readonly target: string; readonly reason: string}>;
}

const UPSTREAM = /^input target (.+) will rebuild$/;

/**
 * Why a target would rebuild: `psy build -n TARGET` itself (one authority on staleness),
 * its verdicts followed from the target down to the root cause.
 */
export async function explain(options: {cwd: string; configPath?: string | undefined; target: string; warn?: (m: string) => void}): Promise<Explanation> {
  const name = options.target;
  const r = await build({
    cwd: options.cwd,
    ...(options.configPath === undefined ? {} : {configPath: options.configPath}),
    targets: [name],
    dryRun: true,
    logger: {
      event(e: BuildEvent) {
        if (e.type === 'warning') options.warn?.(e.message);
      },
    },
  });
  const reasons = new Map(r.wouldRun.map((w) => [w.target, w.reason]));
  const chain: Array<{target: string; reason: string}> = [];
  let current: string | undefined = name;
  while (current !== undefined) {
    const reason = reasons.get(current);
    if (reason === undefined) break;
    chain.push({target: current, reason});
    current = UPSTREAM.exec(reason)?.[1];
  }
  return {target: name, stale: chain.length > 0, chain};
}

export interface TargetInfo {
  readonly name: string;
  readonly description: string | undefined;
  readonly action: string;
  readonly kind: 'command' | 'rule' | 'group';
  readonly pool: string | undefined;
  readonly inputs: Record<string, string[]>;
  readonly params: Record<string, unknown>;
  readonly outputs: Record<string, {path: string; kind: 'file' | 'dir'}>;
  readonly deps: string[];
  readonly dependents: string[];
  readonly lastRun:
    {readonly key: string; readonly start: string; readonly durationMs: number; readonly outputs: ReadonlyArray<{path: string; hash: string}>} | undefined;
  readonly stale: string | undefined;
}

export async function queryTarget(p: Project, name: string): Promise<TargetInfo> {
  const t = requireTarget(p.graph, name);
  const g = p.graph;
  const rec = p.log.targets.get(name);
  const reasons = await staleReasons(p, [name]);
  return {
    name,
    description: t.config.description,
    action: t.config.rule !== undefined ? `${t.config.rule.name} (version ${t.config.rule.version})` : describeAction(t),
    kind: t.config.command !== undefined ? 'command' : t.config.rule !== undefined ? 'rule' : 'group',
    pool: t.pool,
    inputs: Object.fromEntries(
      t.inputs.map((i) => [i.name, i.items.map((it) => (it.kind === 'file' ? it.path : g.targets[it.target]!.outputs[it.output]!.path))]),
    ),
    params: {...(t.config.params ?? {})},
    outputs: Object.fromEntries(t.outputs.map((o) => [o.name, {path: o.path, kind: o.kind}])),
    deps: t.deps.map((d) => g.targets[d]!.name),
    dependents: t.dependents.map((d) => g.targets[d]!.name),
    lastRun: rec === undefined ? undefined : {key: rec.key, start: new Date(rec.start).toISOString(), durationMs: rec.end - rec.start, outputs: rec.outputs},
    stale: reasons.get(name),
  };
}

export function graphJson(g: Graph, want?: Uint8Array): {targets: Array<{name: string; deps: string[]; outputs: string[]; inputs: string[]}>} {
  return {
    targets: g.targets
      .filter((t) => want === undefined || want[t.index] === 1)
      .map((t) => ({
        name: t.name,
        deps: t.deps.map((d) => g.targets[d]!.name),
        outputs: t.outputs.map((o) => o.path),
        inputs: t.inputs.flatMap((i) => i.items.filter((it) => it.kind === 'file').map((it) => (it as {path: string}).path)),
      })),
  };
}

export function graphDot(g: Graph, want?: Uint8Array): string {
  const q = (s: string) => JSON.stringify(s);
  const lines = ['digraph psy {', '  rankdir=LR;', '  node [shape=box];'];
  for (const t of g.targets) {
    if (want !== undefined && want[t.index] !== 1) continue;
    lines.push(`  ${q(t.name)};`);
    for (const d of t.deps) lines.push(`  ${q(g.targets[d]!.name)} -> ${q(t.name)};`);
  }
  lines.push('}');
  return lines.join('\n');
}

/** Remove the outputs of the named targets (default: all) and forget their records. */
export async function clean(options: {cwd: string; configPath?: string | undefined; targets: readonly string[]}): Promise<{removed: string[]}> {
  await initHash();
  const loaded = await loadConfig({cwd: options.cwd, ...(options.configPath === undefined ? {} : {configPath: options.configPath})});
  const graph = analyze(loaded);
  const names = options.targets.length > 0 ? options.targets : graph.targets.map((t) => t.name);
  for (const n of names) requireTarget(graph, n);
  const lock = BuildLock.acquire(graph.stateDir);
  const removed: string[] = [];
  try {
    const log = StateLog.open(graph.stateDir);
    try {
      for (const n of names) {
        const t = graph.byName.get(n)!;
        for (const o of t.outputs) {
          rmSync(join(graph.root, o.path), {recursive: true, force: true});
          removed.push(o.path);
        }
        log.forgetTarget(n);
      }
      if (options.targets.length === 0) rmSync(join(graph.root, graph.outDir, '.psy-tmp'), {recursive: true, force: true});
      log.compactIfNeeded();
    } finally {
      log.close();
    }
  } finally {
    lock.release();
  }
  return {removed};
}
