/**
 * What watch mode must watch for a set of requested targets: the declared source files of
 * every target in their closure (including the files their globs match now), the glob
 * patterns themselves (so a new matching file counts) and the config's own modules.
 * Pure: derived from an analysed graph and a loaded config, reads nothing.
 */
import {createRequire} from 'node:module';
import {join, normalize} from 'node:path';
import {closure, type Graph} from './graph.js';
import type {LoadedConfig} from './load-config.js';

export interface WatchedGlob {
  /** Pattern as declared, relative to the root. */
  readonly pattern: string;
  /** Absolute folder the pattern cannot match outside of (fast-glob's base). */
  readonly base: string;
}

export interface WatchSet {
  /** Absolute project root. */
  readonly root: string;
  /** Absolute paths of the declared input files (glob matches included). */
  readonly inputs: ReadonlySet<string>;
  /** Absolute paths of build.config.ts and the local modules it imports. */
  readonly configFiles: ReadonlySet<string>;
  /** Absolute paths of data files the config read while it was evaluated. */
  readonly configReads: ReadonlySet<string>;
  readonly globs: readonly WatchedGlob[];
  /** Patterns (relative to the root) globs never match: outputs, state, caches. */
  readonly globIgnore: readonly string[];
  /** Absolute folders under which no change matters. */
  readonly ignoredDirs: readonly string[];
}

/** Same exclusions the analyser applies when it expands globs. */
function globIgnoreOf(outDir: string): string[] {
  return [`${outDir}/**`, 'cache/**', 'node_modules/**', '.git/**'];
}

/** The watch set for `targets` (empty = the graph's defaults) of an analysed graph. */
export function watchSetOf(graph: Graph, targets: readonly string[], configReads: Iterable<string> = graph.loaded.readFiles): WatchSet {
  const names = targets.length > 0 ? targets : graph.defaults;
  const want = closure(graph, names);
  const inputs = new Set<string>();
  const patterns = new Set<string>();
  for (const t of graph.targets) {
    if (!want[t.index]) continue;
    for (const input of t.inputs) {
      for (const item of input.items) if (item.kind === 'file') inputs.add(join(graph.root, item.path));
      for (const g of input.globs) patterns.add(g);
    }
  }
  return {
    root: graph.root,
    inputs,
    configFiles: configFilesOf(graph.loaded),
    configReads: new Set(configReads),
    globs: [...patterns].sort().map((pattern) => ({pattern, base: join(graph.root, globBase(pattern))})),
    globIgnore: globIgnoreOf(graph.outDir),
    ignoredDirs: ignoredDirsOf(graph.root, graph.outDir, graph.stateDir),
  };
}

/** Only the config's modules: what to watch when the graph could not be analysed. */
export function configWatchSet(loaded: Pick<LoadedConfig, 'root' | 'configPath' | 'modules' | 'readFiles'>): WatchSet {
  // The graph (and so the output folder) is unknown here; the default is a fair guess.
  const outDir = 'cache/out';
  return {
    root: loaded.root,
    inputs: new Set(),
    configFiles: configFilesOf(loaded),
    configReads: new Set(loaded.readFiles),
    globs: [],
    globIgnore: globIgnoreOf(outDir),
    ignoredDirs: ignoredDirsOf(loaded.root, outDir, join(loaded.root, 'cache', 'state')),
  };
}

/** Union of two watch sets (keeps watching what a failed reload could not analyse). */
export function mergeWatchSets(a: WatchSet, b: WatchSet): WatchSet {
  const globs = new Map<string, WatchedGlob>();
  for (const g of [...a.globs, ...b.globs]) globs.set(g.pattern, g);
  return {
    root: b.root,
    inputs: new Set([...a.inputs, ...b.inputs]),
    configFiles: new Set([...a.configFiles, ...b.configFiles]),
    configReads: new Set([...a.configReads, ...b.configReads]),
    globs: [...globs.values()],
    globIgnore: [...new Set([...a.globIgnore, ...b.globIgnore])],
    ignoredDirs: [...new Set([...a.ignoredDirs, ...b.ignoredDirs])],
  };
}

function configFilesOf(loaded: Pick<LoadedConfig, 'configPath' | 'modules'>): Set<string> {
  return new Set([loaded.configPath, ...loaded.modules]);
}

function ignoredDirsOf(root: string, outDir: string, stateDir: string): string[] {
  return [...new Set([join(root, outDir), join(root, 'cache'), stateDir, join(root, 'node_modules'), join(root, '.git')])];
}

let fastGlob: typeof import('fast-glob') | undefined;

/** The folder a pattern cannot match outside of ('.' for a pattern like `*.txt`). */
export function globBase(pattern: string): string {
  fastGlob ??= createRequire(import.meta.url)('fast-glob') as typeof import('fast-glob');
  const task = fastGlob.generateTasks([pattern])[0];
  return task === undefined ? '.' : task.base;
}

/** Whether `rel` (relative to the root) is matched by `pattern` now, as the analyser expands it. */
export function globMatches(root: string, pattern: string, ignore: readonly string[], rel: string): boolean {
  fastGlob ??= createRequire(import.meta.url)('fast-glob') as typeof import('fast-glob');
  // Expanding the pattern again (instead of a separate matcher) keeps fast-glob's exact
  // semantics (dot files, braces, ignores); it only runs for files added under a glob base.
  if (!fastGlob.isDynamicPattern(pattern)) return normalize(pattern) === rel;
  return fastGlob.sync(pattern, {cwd: root, onlyFiles: true, ignore: [...ignore]}).some((m) => normalize(m) === rel);
}
