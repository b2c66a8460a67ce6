/**
 * The one place that decides whether a target runs, and why (decide). Everything else
 * only gathers evidence for it: the builder computes keys and output hashes, a cone build
 * or the no-op snapshot vouches that none of a target's files changed since a build that
 * found it up to date (the snapshot's fast no-op replays exactly those recorded verdicts).
 * `psy build -n` and `psy explain` print its verdicts.
 *
 * Action keys and the reasons a target is stale. The key of a target is the hash of
 * what it does (rule identity or command text), its parameters, its tools' versions,
 * its declared outputs and the content of every input, including upstream outputs —
 * never whether an upstream ran, so an upstream that rebuilt to the same bytes stops
 * the rebuild there (early cutoff).
 */
import {PsyError} from '../errors.js';
import {shownPath, type Graph, type GraphTarget} from './graph.js';
import {hashString} from './hash.js';
import type {FileHasher} from './file-hasher.js';
import type {TargetRecord} from './state-log.js';
import type {ToolVersions} from './tools.js';

export interface TargetKey {
  readonly key: string;
  readonly action: string;
  readonly params: string;
  readonly tools: string;
  /** Content hash of each input item in graph order. */
  readonly inputs: readonly string[];
}

/** Current content hashes of targets' outputs, indexed [target][output]. */
export type OutputHashes = Array<readonly string[] | undefined>;

const actionMemo = new WeakMap<object, string>();

export function actionOf(graph: Graph, t: GraphTarget): string {
  const cfg = t.config;
  if (cfg.command !== undefined) return hashString(`command\0${cfg.command}`);
  if (cfg.rule !== undefined) {
    const rule = cfg.rule;
    let a = actionMemo.get(rule);
    if (a === undefined) {
      const identity = graph.loaded.moduleIdentity(rule.module) ?? hashString(String(rule.run));
      a = hashString(`rule\0${rule.name}\0${rule.version}\0${identity}`);
      actionMemo.set(rule, a);
    }
    return a;
  }
  return 'group';
}

export function stableJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
    .join(',')}}`;
}

export function inputLabel(graph: Graph, t: GraphTarget, index: number): string {
  let i = 0;
  for (const input of t.inputs) {
    for (const item of input.items) {
      if (i++ === index) {
        if (item.kind === 'file') return shownPath(graph, item.path);
        const up = graph.targets[item.target]!;
        return up.outputs[item.output]!.path;
      }
    }
  }
  return `#${index}`;
}

/**
 * The key of a target from the current inputs. Returns undefined when an upstream
 * output's content is not known (dry run: the upstream would rebuild first).
 */
export function computeKey(graph: Graph, t: GraphTarget, files: FileHasher, tools: ToolVersions, upstream: OutputHashes): TargetKey | undefined {
  const action = actionOf(graph, t);
  const cfg = t.config;
  const params = cfg.params === undefined ? '' : hashString(stableJson(cfg.params));
  const toolSpecs = [...(cfg.rule?.tools ?? []), ...(cfg.tools ?? [])];
  const toolText = tools.describe(t.name, toolSpecs);
  const inputs: string[] = [];
  let text = `${action}\0${params}\0${toolText}\0`;
  for (const o of t.outputs) text += `o\0${o.name}\0${o.kind}\0${o.path}\0`;
  for (const input of t.inputs) {
    text += `i\0${input.name}\0`;
    for (const item of input.items) {
      let h: string | undefined;
      if (item.kind === 'file') {
        h = files.file(item.path);
        if (h === undefined) {
          throw new PsyError('missing-input', `target "${t.name}": input "${input.name}" file ${shownPath(graph, item.path)} does not exist`);
        }
        text += `${item.path}\0${h}\0`;
      } else {
        h = upstream[item.target]?.[item.output];
        if (h === undefined) return undefined;
        text += `${graph.wholeIndex?.[item.target] ?? item.target}:${item.output}\0${h}\0`;
      }
      inputs.push(h);
    }
  }
  return {key: hashString(text), action, params, tools: toolText, inputs};
}

/**
 * A target's outputs as they are now: whether each is there (a stat), and their hashes,
 * read only when asked (only a target whose key matches its record needs them).
 */
export interface OutputProbe {
  present(k: number): boolean;
  hash(k: number): string | undefined;
}

export function outputProbe(t: GraphTarget, files: FileHasher): OutputProbe {
  return {
    present: (k) => files.exists(t.outputs[k]!.path, t.outputs[k]!.kind),
    hash: (k) => files.output(t.outputs[k]!.path, t.outputs[k]!.kind),
  };
}

/** What a caller found out about a target. */
export type Evidence =
  /** A group (no step): done once its inputs are. `pending`: an upstream that would rebuild (dry run). */
  | {readonly kind: 'group'; readonly pending?: string}
  /** Dry run: this upstream would rebuild, so the target's key cannot be known yet. */
  | {readonly kind: 'upstream-pending'; readonly upstream: string}
  /** The snapshot saw none of its files, nor an upstream's, change since it was last found up to date. */
  | {readonly kind: 'vouched'; readonly rec: TargetRecord | undefined}
  /** Its key from the current inputs, its record, its outputs as they are now. */
  | {readonly kind: 'keyed'; readonly key: TargetKey; readonly rec: TargetRecord | undefined; readonly outputs: OutputProbe};

export type Verdict =
  /** Up to date: its outputs' hashes, for the targets that read them. */
  | {readonly run: false; readonly outputs: readonly string[]}
  | {readonly run: true; readonly reason: string}
  /** The evidence does not settle it: compute the key and decide again. */
  | {readonly run: 'need-key'};

export function decide(graph: Graph, t: GraphTarget, e: Evidence): Verdict {
  switch (e.kind) {
    case 'group':
      return e.pending === undefined ? {run: false, outputs: []} : {run: true, reason: `input target ${e.pending} will rebuild`};
    case 'upstream-pending':
      return {run: true, reason: `input target ${e.upstream} will rebuild`};
    case 'vouched': {
      // Only a record of the outputs the target declares now vouches for them.
      const rec = e.rec;
      if (rec === undefined || rec.outputs.length !== t.outputs.length || rec.outputs.some((o, k) => o.path !== t.outputs[k]!.path)) return {run: 'need-key'};
      return {run: false, outputs: rec.outputs.map((o) => o.hash)};
    }
    case 'keyed': {
      const hashes: string[] = [];
      const reason = staleReason(graph, t, e.key, e.rec, e.outputs, hashes);
      return reason === undefined ? {run: false, outputs: hashes} : {run: true, reason};
    }
  }
}

/**
 * The first reason a target must run, or undefined when it is up to date (its outputs'
 * hashes then in `hashes`). Order: never built, output missing, action changed, tool
 * changed, parameters changed, input changed, output changed since it was built.
 */
function staleReason(graph: Graph, t: GraphTarget, key: TargetKey, rec: TargetRecord | undefined, outputs: OutputProbe, hashes: string[]): string | undefined {
  if (t.config.rule === undefined && t.config.command === undefined) return undefined;
  if (rec === undefined) return 'never built';
  for (let i = 0; i < t.outputs.length; i++) {
    if (!outputs.present(i)) return `output ${t.outputs[i]!.path} missing`;
  }
  if (rec.key === key.key) {
    for (let i = 0; i < t.outputs.length; i++) {
      const recorded = rec.outputs[i];
      if (recorded === undefined || recorded.path !== t.outputs[i]!.path) return 'outputs changed';
      const now = outputs.hash(i);
      if (now === undefined) return `output ${t.outputs[i]!.path} missing`;
      if (recorded.hash !== now) return `output ${t.outputs[i]!.path} changed since it was built`;
      hashes.push(now);
    }
    return undefined;
  }
  if (rec.action !== key.action) return t.config.rule !== undefined ? `rule ${t.config.rule.name} changed` : 'command changed';
  if (rec.tools !== key.tools) return toolChange(rec.tools, key.tools);
  if (rec.params !== key.params) return 'parameters changed';
  if (rec.inputs.length === key.inputs.length) {
    for (let i = 0; i < key.inputs.length; i++) {
      if (rec.inputs[i] !== key.inputs[i]) return `input ${inputLabel(graph, t, i)} changed`;
    }
  }
  return rec.inputs.length === key.inputs.length ? 'declared inputs or outputs changed' : 'list of inputs changed';
}

function toolChange(before: string, after: string): string {
  const old = new Map(
    before
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('=', 2) as [string, string]),
  );
  for (const line of after.split('\n').filter(Boolean)) {
    const [cmd, version] = line.split('=', 2) as [string, string];
    const was = old.get(cmd);
    if (was === undefined) return `tool ${cmd} added`;
    if (was !== version) return `tool ${cmd} ${shortVersion(was)} → ${shortVersion(version)}`;
  }
  return 'tools changed';
}

function shortVersion(v: string): string {
  return /\d+(\.\d+)+/.exec(v)?.[0] ?? v;
}
