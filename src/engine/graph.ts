/**
 * Analysis: a loaded config → a validated target graph. Pure except for reading the
 * file system to expand globs; runs nothing (and stats no input: see missingInputs).
 * Every problem is one line naming the target and the cause; all are reported at once.
 */
import {createRequire} from 'node:module';
import {isAbsolute, join, normalize, relative, resolve, sep} from 'node:path';
import {PsyError} from '../errors.js';
import {checkConfig, formatProblem} from './config-check.js';
import type {InputSource, OutputSpec, TargetConfig, TargetList} from './config.js';
import {didYouMean} from '../wording.js';
import type {LoadedConfig} from './load-config.js';

export type InputItem =
  /** A source file, relative to the root (normalised). */
  | {readonly kind: 'file'; readonly path: string}
  /** One output of another target. */
  | {readonly kind: 'output'; readonly target: number; readonly output: number};

export interface GraphInput {
  readonly name: string;
  readonly items: readonly InputItem[];
  /** Glob patterns this input was expanded from (for watch mode). */
  readonly globs: readonly string[];
  /** Glob patterns that matched no file (an error of a build that needs this input). */
  readonly unmatched?: readonly string[];
}

export interface GraphOutput {
  readonly name: string;
  readonly kind: 'file' | 'dir';
  /** Relative to the root (inside the output folder). */
  readonly path: string;
}

export interface GraphTarget {
  readonly index: number;
  readonly name: string;
  readonly config: TargetConfig;
  readonly inputs: readonly GraphInput[];
  readonly outputs: readonly GraphOutput[];
  /** Upstream targets, unique, in declaration order. */
  readonly deps: readonly number[];
  /** Downstream targets. */
  readonly dependents: number[];
  /** Pool name, or undefined for the default pool. */
  readonly pool: string | undefined;
  /** Longest chain of targets from here to a sink (scheduling priority). */
  criticalPath: number;
}

export interface Graph {
  readonly root: string;
  readonly configPath: string;
  /** Output folder relative to the root. */
  readonly outDir: string;
  /** State folder, absolute. */
  readonly stateDir: string;
  readonly targets: readonly GraphTarget[];
  readonly byName: ReadonlyMap<string, GraphTarget>;
  /** Default targets (names). */
  readonly defaults: readonly string[];
  readonly pools: ReadonlyMap<string, number>;
  readonly sourceDateEpoch: number;
  readonly loaded: LoadedConfig;
  /**
   * A sub-graph (a cone build): each target's index in the whole graph. Action keys name
   * upstream targets by that index, so they are the same whichever part was analysed.
   */
  readonly wholeIndex?: readonly number[];
}

// '@' names an instance of a target family (sectar@NODE, diskimg@NODE).
const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function flattenTargets(list: TargetList, out: TargetConfig[] = [], seen = new Set<TargetList>()): TargetConfig[] {
  // A list that contains itself is walked once (as checkConfig does).
  if (seen.has(list)) return out;
  seen.add(list);
  for (const t of list) {
    if (Array.isArray(t)) flattenTargets(t as TargetList, out, seen);
    else out.push(t as TargetConfig);
  }
  return out;
}

function asList<T>(v: T | readonly T[]): readonly T[] {
  return Array.isArray(v) ? (v as readonly T[]) : [v as T];
}

function err(code: string, message: string): PsyError {
  return new PsyError(code, message);
}

/** Stat of a path relative to the root (memoised per run by the caller). */
export type StatFn = (rel: string) => {isFile(): boolean} | undefined;

/**
 * Analyse a loaded config into a graph. Every problem is collected before anything is
 * thrown: one PsyError lists them all, a line each. Input files are not stat'ed here
 * (commands that only read the graph work while a file is missing): a missing input is
 * an error of the build that needs it (see missingInputs).
 */
export function analyze(loaded: LoadedConfig): Graph {
  const {root, config} = loaded;
  const configRel = relative(root, loaded.configPath);
  const shape = checkConfig(config);
  if (shape.length > 0) throw configError(shape.map((p) => ({code: 'config-invalid', message: `${configRel}: ${formatProblem(p)}`})));
  const problems: Array<{code: string; message: string}> = [];
  const problem = (code: string, message: string): void => void problems.push({code, message});
  const outDir = normalizeRel(config.outDir ?? 'cache/out');
  const stateDir = join(root, config.stateDir ?? 'cache/state');
  const decls = flattenTargets(config.targets);
  const pools = new Map<string, number>([['console', 1]]);
  for (const [name, depth] of Object.entries(config.pools ?? {})) pools.set(name, depth);

  // Pass 1: names.
  const byName = new Map<string, number>();
  decls.forEach((t, i) => {
    if (!TARGET_NAME.test(t.name) || t.name.includes('..')) {
      problem('invalid-target-name', `invalid target name ${JSON.stringify(t.name)} (use letters, digits and _ . : / @ -, starting with a letter or digit)`);
    } else if (byName.has(t.name)) {
      problem('duplicate-target', `target "${t.name}" is declared twice`);
    } else {
      byName.set(t.name, i);
    }
  });

  // Pass 2: outputs (needed before inputs can refer to them).
  const outputOwner = new Map<string, string>();
  const outputsOf: GraphOutput[][] = decls.map((t) => {
    const outs: GraphOutput[] = [];
    for (const [name, spec] of Object.entries(t.outputs ?? {})) {
      if (!IDENT.test(name)) {
        problem('invalid-output-name', `target "${t.name}": output name "${name}" must be an identifier`);
        continue;
      }
      const o = outputOf(spec);
      const rel = normalizeRel(o.path);
      if (isAbsolute(o.path) || rel === '.' || rel === '..' || rel.startsWith('..' + sep) || rel.startsWith('.psy-tmp')) {
        problem('output-outside', `target "${t.name}": output "${name}" (${o.path}) is outside the output folder ${outDir}`);
        continue;
      }
      const path = outDir + sep + rel;
      const prev = outputOwner.get(path);
      if (prev !== undefined) {
        problem(
          'duplicate-output',
          prev === t.name ? `target "${t.name}" declares output ${path} twice` : `output ${path} is declared by both "${prev}" and "${t.name}"`,
        );
        continue;
      }
      outputOwner.set(path, t.name);
      outs.push({name, kind: o.kind, path});
    }
    const declared = Object.keys(t.outputs ?? {}).length;
    if (t.rule === undefined && t.command === undefined && declared > 0) {
      problem('no-action', `target "${t.name}" has outputs but neither a rule nor a command`);
    }
    if (t.rule !== undefined && t.command !== undefined) {
      problem('no-action', `target "${t.name}" has both a rule and a command; keep one`);
    }
    if ((t.rule !== undefined || t.command !== undefined) && declared === 0) {
      problem('no-outputs', `target "${t.name}" declares no outputs`);
    }
    if (t.pool !== undefined && !pools.has(t.pool)) {
      problem('unknown-pool', `target "${t.name}": unknown pool "${t.pool}"${didYouMean(t.pool, pools.keys())}`);
    }
    return outs;
  });
  // A file output inside another target's directory output would be overwritten.
  const dirOutputs = outputsOf.flat().filter((o) => o.kind === 'dir');
  if (dirOutputs.length > 0) {
    for (const [path, owner] of outputOwner) {
      for (const d of dirOutputs) {
        if (path !== d.path && path.startsWith(d.path + sep)) {
          problem('duplicate-output', `output ${path} of "${owner}" lies inside directory output ${d.path} of "${outputOwner.get(d.path)!}"`);
        }
      }
    }
  }

  // Pass 3: inputs.
  let fastGlob: typeof import('fast-glob') | undefined;
  const outDirPrefix = outDir + sep;
  const targets: GraphTarget[] = decls.map((t, index) => {
    const inputs: GraphInput[] = [];
    const deps: number[] = [];
    for (const [name, spec] of Object.entries(t.inputs ?? {})) {
      if (!IDENT.test(name)) {
        problem('invalid-input-name', `target "${t.name}": input name "${name}" must be an identifier`);
        continue;
      }
      const items: InputItem[] = [];
      const globs: string[] = [];
      const unmatched: string[] = [];
      for (const src of asList<InputSource>(spec)) {
        if (typeof src === 'string' || 'files' in src) {
          const files = typeof src === 'string' ? [src] : asList(src.files);
          for (const f of files) {
            // An absolute path is kept relative to the root too (../..), so every
            // consumer joins it to the root the same way.
            const path = isAbsolute(f) ? relative(root, f) : normalizeRel(f);
            if (path.startsWith(outDirPrefix)) {
              problem('input-in-output-folder', `target "${t.name}": input "${name}" reads ${f} from the output folder; name the target that makes it instead`);
              continue;
            }
            items.push({kind: 'file', path});
          }
        } else if ('glob' in src) {
          fastGlob ??= loadFastGlob();
          for (const pattern of asList(src.glob)) {
            const matches = fastGlob.sync(pattern, {
              cwd: root,
              onlyFiles: true,
              ignore: [`${outDir}/**`, 'cache/**', 'node_modules/**', '.git/**'],
            });
            if (matches.length === 0) unmatched.push(pattern);
            globs.push(pattern);
            for (const m of matches.sort()) items.push({kind: 'file', path: normalize(m)});
          }
        } else {
          const up = byName.get(src.target);
          if (up === undefined) {
            problem('unknown-dependency', `target "${t.name}": input "${name}" names unknown target "${src.target}"${didYouMean(src.target, byName.keys())}`);
            continue;
          }
          const upOuts = outputsOf[up]!;
          let chosen: number[];
          if (src.output === undefined) {
            chosen = upOuts.map((_, i) => i);
            if (chosen.length === 0) {
              problem('unknown-dependency', `target "${t.name}": input "${name}" uses target "${src.target}", which has no outputs`);
              continue;
            }
          } else {
            const i = upOuts.findIndex((o) => o.name === src.output);
            if (i < 0) {
              problem(
                'unknown-dependency',
                `target "${t.name}": input "${name}" names unknown output "${src.output}" of target "${src.target}"${didYouMean(
                  src.output,
                  upOuts.map((o) => o.name),
                )}`,
              );
              continue;
            }
            chosen = [i];
          }
          for (const o of chosen) items.push({kind: 'output', target: up, output: o});
          if (!deps.includes(up)) deps.push(up);
        }
      }
      inputs.push({name, items, globs, ...(unmatched.length === 0 ? {} : {unmatched})});
    }
    return {
      index,
      name: t.name,
      config: t,
      inputs,
      outputs: outputsOf[index]!,
      deps,
      dependents: [],
      pool: t.pool,
      criticalPath: 0,
    };
  });
  const defaults = config.default === undefined ? targets.map((t) => t.name) : [...asList(config.default)];
  for (const d of config.default === undefined ? [] : defaults) {
    if (!byName.has(d)) problem('unknown-dependency', `default target "${d}" is not declared${didYouMean(d, byName.keys())}`);
  }
  if (problems.length > 0) throw configError(problems);
  for (const t of targets) for (const d of t.deps) targets[d]!.dependents.push(t.index);

  const order = topoOrder(targets);
  // Critical path: longest chain to a sink, computed sinks first.
  for (let i = order.length - 1; i >= 0; i--) {
    const t = targets[order[i]!]!;
    let best = 0;
    for (const d of t.dependents) best = Math.max(best, targets[d]!.criticalPath);
    t.criticalPath = best + 1;
  }

  const byNameT = new Map<string, GraphTarget>();
  for (const t of targets) byNameT.set(t.name, t);
  return {
    root,
    configPath: loaded.configPath,
    outDir,
    stateDir,
    targets,
    byName: byNameT,
    defaults,
    pools,
    sourceDateEpoch: config.sourceDateEpoch ?? 0,
    loaded,
  };
}

/** One PsyError for every problem found: its own code when alone, a line each. */
function configError(problems: ReadonlyArray<{code: string; message: string}>): PsyError {
  if (problems.length === 1) return err(problems[0]!.code, problems[0]!.message);
  return err('config-invalid', problems.map((p) => p.message).join('\n'));
}

/**
 * What the wanted targets read that is not there: a line per missing input file or glob
 * that matches nothing, naming the target and the input (as ninja names the edge that
 * needs a missing file). Empty when the build can start.
 */
export function missingInputs(graph: Graph, want: Uint8Array, stat: StatFn): string[] {
  const missing: string[] = [];
  for (const t of graph.targets) {
    if (!want[t.index]) continue;
    for (const input of t.inputs) {
      for (const item of input.items) {
        if (item.kind !== 'file' || stat(item.path)?.isFile() === true) continue;
        missing.push(`target "${t.name}": input "${input.name}" file ${shownPath(graph, item.path)} does not exist`);
      }
      for (const pattern of input.unmatched ?? []) {
        missing.push(`target "${t.name}": input "${input.name}" glob "${pattern}" matches no file`);
      }
    }
  }
  return missing;
}

/** A path as the config wrote it: relative inside the root, absolute outside it. */
export function shownPath(graph: Graph, rel: string): string {
  return rel.startsWith('..' + sep) || rel === '..' ? resolve(graph.root, rel) : rel;
}

/** An output spec checkConfig accepted. */
function outputOf(spec: OutputSpec): {kind: 'file' | 'dir'; path: string} {
  if (typeof spec === 'string') return {kind: 'file', path: spec};
  return 'file' in spec ? {kind: 'file', path: spec.file} : {kind: 'dir', path: spec.dir};
}

/** Already-normal relative paths (the common case) skip path.normalize. */
const NEEDS_NORMALIZE = /(^|\/)\.\.?(\/|$)|\/\/|\/$|^\//;
function normalizeRel(p: string): string {
  if (p.length > 0 && !NEEDS_NORMALIZE.test(p)) return p;
  return normalize(p).replace(/\/+$/, '');
}

function loadFastGlob(): typeof import('fast-glob') {
  // fast-glob is CommonJS; load it synchronously only when a target uses a glob.
  return requireCjs('fast-glob') as typeof import('fast-glob');
}

let requireFn: NodeRequire | undefined;
function requireCjs(id: string): unknown {
  requireFn ??= createRequire(import.meta.url);
  return requireFn(id);
}

/** Topological order (dependencies first); throws a cycle error printing the cycle. */
export function topoOrder(targets: readonly GraphTarget[]): number[] {
  const state = new Uint8Array(targets.length); // 0 new, 1 on stack, 2 done
  const order: number[] = [];
  for (let start = 0; start < targets.length; start++) {
    if (state[start] !== 0) continue;
    // Iterative DFS: stack of [node, next dep index].
    const stack: Array<[number, number]> = [[start, 0]];
    state[start] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const t = targets[top[0]]!;
      if (top[1] < t.deps.length) {
        const d = t.deps[top[1]++]!;
        if (state[d] === 1) {
          const path = stack.map(([n]) => n);
          const cycle = path.slice(path.indexOf(d)).map((n) => targets[n]!.name);
          throw err('cycle', `dependency cycle: ${[...cycle, targets[d]!.name].join(' -> ')}`);
        }
        if (state[d] === 0) {
          state[d] = 1;
          stack.push([d, 0]);
        }
      } else {
        state[top[0]] = 2;
        order.push(top[0]);
        stack.pop();
      }
    }
  }
  return order;
}

/** The named targets and everything they depend on, as a membership mask. */
export function closure(graph: Graph, names: readonly string[]): Uint8Array {
  const want = new Uint8Array(graph.targets.length);
  const stack: number[] = [];
  for (const n of names) {
    const t = graph.byName.get(n);
    if (t === undefined) throw unknownTarget(graph, n);
    stack.push(t.index);
  }
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (want[i]) continue;
    want[i] = 1;
    for (const d of graph.targets[i]!.deps) stack.push(d);
  }
  return want;
}

/** `unknown target "x"`, with the closest declared name when there is one. */
export function unknownTarget(graph: Graph, name: string): PsyError {
  const hint = didYouMean(name, graph.byName.keys());
  return err('unknown-target', `unknown target "${name}"${hint === '' ? ' (see psy targets)' : hint}`);
}
