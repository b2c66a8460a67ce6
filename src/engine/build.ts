/**
 * The programmatic build: load the config, analyse it, take the lock, replay the state
 * log, run the builder. Used by `psy build`, `psy publish` and watch mode. It never
 * prints and never exits: it reports through the injected logger and returns a result.
 */
import {availableParallelism} from 'node:os';
import {dirname, isAbsolute, join, resolve, sep} from 'node:path';
import {readdirSync, rmSync, statSync, type Dirent} from 'node:fs';
import {Builder} from './builder.js';
import type {BuildLogger} from './events.js';
import {silentLogger} from './events.js';
import {FileHasher, StatCache} from './file-hasher.js';
import {analyze, closure, missingInputs, type Graph} from './graph.js';
import {CachedGraph, graphCachePath, groupIn, isCacheDamage, serializeGraph, wantedIn} from './graph-cache.js';
import {initHash} from './hash.js';
import {findConfig, loadConfig, writeAtomic, type LoadedConfig} from './load-config.js';
import {noopCheck, type NoopCheck} from './noop-check.js';
import {
  currentLogTuple,
  patchSnapshot,
  readSnapshot,
  removeSnapshot,
  snapshotOutputs,
  snapshotPath,
  statTuple,
  writeSnapshot,
  type ChangedFiles,
  type FastResult,
  type SnapshotEntry,
} from './noop-snapshot.js';
import {BuildLock} from './lock.js';
import {StateLog} from './state-log.js';
import {ToolVersions} from './tools.js';
import {PsyError} from '../errors.js';

export interface BuildOptions {
  readonly cwd: string;
  readonly configPath?: string;
  /** Targets to build; empty or missing = the config's default targets. */
  readonly targets?: readonly string[];
  /** Parallel steps; default: number of cores. */
  readonly jobs?: number;
  /** Stop after this many failures (default 1); 0 = keep going as far as possible. */
  readonly keepGoing?: number;
  /** Decide what would run and why, run nothing. */
  readonly dryRun?: boolean;
  readonly logger?: BuildLogger;
  /** Abort (Ctrl-C, watch mode restart): running steps are killed, temporaries removed. */
  readonly signal?: AbortSignal;
  /** Environment for steps; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** An already loaded config (watch mode reloads only when the config changes). */
  readonly loaded?: LoadedConfig;
  /** The no-op check already made for these very options (by the CLI), and when it began: not made again. */
  readonly noopCheck?: {readonly result: NoopCheck | undefined; readonly startedAt: number};
}

export interface BuildResult {
  readonly ok: boolean;
  /** Targets whose step ran and succeeded, in completion order. */
  readonly ran: readonly string[];
  /** The same steps with their times (ms since the epoch); also in build.log in the state folder. */
  readonly steps: ReadonlyArray<{readonly target: string; readonly start: number; readonly end: number; readonly durationMs: number}>;
  /** Targets found up to date. */
  readonly upToDate: readonly string[];
  readonly failed: ReadonlyArray<{readonly target: string; readonly message: string}>;
  /** Targets not run because a dependency failed. */
  readonly skipped: readonly string[];
  /** Dry run: targets that would run, with the first reason. */
  readonly wouldRun: ReadonlyArray<{readonly target: string; readonly reason: string}>;
  readonly interrupted: boolean;
  /** Outputs of the targets made (up to date or built now): name → output → absolute path. */
  readonly outputs: Readonly<Record<string, Readonly<Record<string, string>>>>;
  readonly root: string;
  /** The analysed graph; absent when the no-op fast path answered without loading it. */
  readonly graph?: Graph;
}

export async function build(options: BuildOptions): Promise<BuildResult> {
  const logger = options.logger ?? silentLogger;
  // Stats taken by a no-op check made before build() was called count from its start.
  const buildStart = options.noopCheck?.startedAt ?? Date.now();
  const dryRun = options.dryRun === true;
  const env = options.env ?? process.env;
  const requested = options.targets ?? [];
  const configOptions = {cwd: options.cwd, ...(options.configPath === undefined ? {} : {configPath: options.configPath})};
  let snapshotFile: string | undefined;
  let changedFiles: ChangedFiles | undefined;
  let checkedIdentity: string | undefined;
  if (options.loaded === undefined && !dryRun) {
    const id = options.noopCheck !== undefined ? options.noopCheck.result : await noopCheck({...configOptions, targets: requested, envPath: env['PATH'] ?? ''});
    if (id !== undefined) {
      snapshotFile = id.snapshotFile;
      const check = id.check;
      const fast = check?.kind === 'fresh' ? fastResult(check.result, id.root, logger) : undefined;
      if (fast !== undefined) return fast;
      if (check?.kind === 'changed') {
        changedFiles = check.files;
        checkedIdentity = id.identity;
      }
    }
  }
  const hashReady = initHash();
  let loaded: LoadedConfig | undefined;
  let graph: Graph | undefined;
  let configReads: SnapshotEntry[];
  let graphId: string | undefined;
  let graphFromCache = false;
  let cache: CachedGraph | undefined;
  let cone: Cone | undefined;
  if (changedFiles?.graph !== undefined && snapshotFile !== undefined && checkedIdentity !== undefined) {
    // Only input and output files changed: the graph analysed last time stands.
    const stub = cachedConfig(options, changedFiles, checkedIdentity);
    cache = CachedGraph.open(graphCachePath(snapshotFile), changedFiles.graph);
    cone = cache === undefined ? undefined : coneOf(cache, stub, changedFiles.changed);
    graph = cone?.graph ?? (cache === undefined ? undefined : fullGraph(cache, stub));
    if (graph !== undefined) {
      loaded = stub;
      graphId = changedFiles.graph;
      graphFromCache = true;
    }
  }
  if (loaded === undefined) loaded = options.loaded ?? (await loadConfig(configOptions));
  snapshotFile ??= snapshotPath(loaded.root, loaded.configPath, requested);
  const stats = new StatCache(loaded.root);
  // The same config evaluated the same way (its identity and read files are unchanged).
  if (loaded.identity !== checkedIdentity) changedFiles = undefined;
  // A cone build stats the few files it looks at again; a full check reuses every stat taken.
  if (changedFiles !== undefined && cone === undefined) stats.seed(changedFiles.stats);
  if (graph !== undefined) {
    configReads = [...changedFiles!.configReads];
  } else {
    configReads = loaded.readFiles.map((path): SnapshotEntry => ({path, stat: statTuple(path)}));
    graph = analyze(loaded);
  }
  let names = options.targets !== undefined && options.targets.length > 0 ? options.targets : graph.defaults;
  let want = cone !== undefined ? cone.want : closure(graph, names);
  // Without a snapshot's stats, every wanted target's files are stat'ed in one batch.
  if (changedFiles === undefined) stats.prefetch(wantedFiles(graph, want));
  await hashReady;
  const warn = (message: string) => logger.event({type: 'warning', message});
  const lock = dryRun ? undefined : BuildLock.acquire(graph.stateDir, (pid) => warn(`took over the build lock of pid ${pid}, which no longer runs`));
  const tmpRoot = join(graph.root, graph.outDir, '.psy-tmp');
  let log: StateLog | undefined;
  try {
    // A cone build writes its snapshot as the previous one with the cone's entries patched.
    let previous: Buffer | undefined;
    if (lock !== undefined) {
      removeStaleTemporaries(tmpRoot);
      // The bytes the check read: entries the cone build does not patch keep the stats that
      // check confirmed (a file changed since differs at the next check).
      if (cone !== undefined) previous = changedFiles?.snapshot ?? readSnapshot(snapshotFile);
      removeSnapshot(snapshotFile);
    }
    // The snapshot vouches for the log's records only if nobody wrote the log since.
    let clean: Uint8Array | undefined;
    const vouched = changedFiles !== undefined && changedFiles.stateDir === graph.stateDir && sameTuple(currentLogTuple(graph.stateDir), changedFiles.log);
    log = StateLog.open(graph.stateDir, {readOnly: dryRun, warn, ...(vouched ? {vouched: changedFiles!.log} : {})});
    if (cone !== undefined && (!vouched || !settledFromRecords(cone, log))) {
      // The cone alone cannot be trusted: look at the whole graph as a full check does.
      cone = undefined;
      previous = undefined;
      if (changedFiles !== undefined) stats.seed(changedFiles.stats);
      const whole = cache === undefined ? undefined : fullGraph(cache, loaded);
      if (whole !== undefined) {
        graph = whole;
      } else {
        // Not even the whole cached graph reads back: evaluate the config, as without one.
        const evaluated = await loadConfig(configOptions);
        if (evaluated.identity !== checkedIdentity) changedFiles = undefined;
        const analysed = analyze(evaluated);
        if (analysed.stateDir !== graph.stateDir) throw new PsyError('config-changed', 'the config changed while psy was building; run psy build again');
        loaded = evaluated;
        configReads = evaluated.readFiles.map((path): SnapshotEntry => ({path, stat: statTuple(path)}));
        graph = analysed;
        graphId = undefined;
        graphFromCache = false;
      }
      names = options.targets !== undefined && options.targets.length > 0 ? options.targets : graph.defaults;
      want = closure(graph, names);
    }
    if (cone !== undefined) {
      clean = cone.clean;
      // Wanted targets outside the cone are up to date, as the snapshot says.
      logger.event({type: 'plan', total: cone.wanted});
      for (const name of cone.outside) logger.event({type: 'fresh', target: name});
    } else if (vouched && changedFiles !== undefined) {
      clean = cleanTargets(graph, want, changedFiles.changed);
    }
    // A missing input is an error of the build that reads it, found before anything runs.
    const missing = missingInputs(graph, want, stats.get);
    if (missing.length > 0) throw new PsyError('missing-input', missing.join('\n'));
    const files = new FileHasher(graph.root, log, stats);
    const tools = new ToolVersions(log, env['PATH']);
    const builder = new Builder({
      graph,
      want,
      log,
      files,
      tools,
      logger,
      jobs: Math.max(1, options.jobs ?? availableParallelism()),
      keepGoing: options.keepGoing ?? 1,
      dryRun,
      signal: options.signal,
      env,
      tmpRoot,
      ...(clean === undefined ? {} : {clean}),
      ...(cone === undefined ? {} : {announce: false}),
    });
    const r = await builder.run();
    log.flush();
    if (!dryRun && !log.compactIfNeeded()) log.saveIndex();
    const g = graph;
    const outputsOf = (): Record<string, Record<string, string>> => {
      if (cone !== undefined) {
        const recorded = previous === undefined ? undefined : snapshotOutputs(previous);
        if (recorded !== undefined) return recorded;
        const again = CachedGraph.open(graphCachePath(snapshotFile!), graphId!);
        if (again === undefined) throw new PsyError('graph-cache', `the cached graph beside ${snapshotFile} was replaced; run psy build again for the outputs`);
        try {
          return cone.outputs(again);
        } finally {
          again.close();
        }
      }
      const outputs: Record<string, Record<string, string>> = {};
      for (const t of g.targets) {
        if (!want[t.index] || t.outputs.length === 0) continue;
        outputs[t.name] = Object.fromEntries(t.outputs.map((o) => [o.name, join(g.root, o.path)]));
      }
      return outputs;
    };
    const succeeded = r.failed.length === 0 && !r.interrupted && r.skipped.length === 0;
    if (!dryRun && options.loaded === undefined && succeeded && cone !== undefined && previous !== undefined) {
      const patches = conePatches(cone, changedFiles!, stats, tools.executables());
      if (patches !== undefined) patchSnapshot(snapshotFile, previous, patches, buildStart, writeAtomic);
    } else if (!dryRun && options.loaded === undefined && succeeded && cone === undefined) {
      // Targets taken as clean never asked for their tools: keep the tools the snapshot
      // watched (unchanged, or there would be no cone check).
      const toolEntries = new Map<string, SnapshotEntry['stat']>(clean === undefined ? [] : changedFiles!.tools.map((e) => [e.path, e.stat]));
      for (const [path, stat] of tools.executables()) toolEntries.set(path, stat);
      const watched = snapshotEntries(graph, want, stats, toolEntries, configReads);
      if (watched !== undefined) {
        const entries = watched.entries;
        if (graphId === undefined) {
          graphId = `${buildStart}-${process.pid}`;
          const bytes = serializeGraph(graph, graphId, want);
          if (bytes === undefined) graphId = undefined;
          else writeAtomic(graphCachePath(snapshotFile), bytes);
        }
        const counts = {configReads: watched.configReads, tools: entries.length - entries.indexOf(TOOLS_MARK) - 1};
        entries.splice(entries.indexOf(TOOLS_MARK), 1);
        writeSnapshot(
          snapshotFile,
          {
            identity: loaded.identity,
            targets: requested,
            envPath: env['PATH'] ?? '',
            stateDir: graph.stateDir,
            upToDate: [...r.fresh, ...r.ran],
            outputs: outputsOf(),
            ...(graphId === undefined ? {} : {graph: graphId}),
          },
          entries,
          counts,
          buildStart,
          writeAtomic,
        );
      }
    }
    if (r.interrupted)
      logger.event({type: 'interrupted', signal: options.signal?.reason instanceof Error ? 'abort' : String(options.signal?.reason ?? 'abort')});
    let outputs: Record<string, Record<string, string>> | undefined;
    const upToDate = cone === undefined ? r.fresh : [...cone.outside, ...r.fresh];
    const result: BuildResult = {
      ok: r.failed.length === 0 && !r.interrupted,
      ran: r.ran,
      steps: r.steps,
      upToDate,
      failed: r.failed,
      skipped: r.skipped,
      wouldRun: r.wouldRun,
      interrupted: r.interrupted,
      // The outputs of the targets that are made (up to date or built now); not of a target
      // that failed, was skipped or would run. Built when asked for (a cone build decodes them all).
      get outputs() {
        return (outputs ??= madeOnly(outputsOf(), new Set([...upToDate, ...r.ran])));
      },
      root: graph.root,
      // A graph from the cache has no evaluated config behind it.
      ...(graphFromCache ? {} : {graph}),
    };
    return result;
  } finally {
    cache?.close();
    log?.close();
    if (lock !== undefined) {
      try {
        rmSync(tmpRoot, {recursive: true, force: true});
      } catch {
        // Best effort; removed at the next start.
      }
      lock.release();
    }
  }
}

/**
 * What a cone build looks at: the targets in the cones of the changed files (dirty) and
 * the upstream targets they read (settled from their records), re-indexed as a graph of
 * their own. The other wanted targets are up to date as the snapshot says.
 */
interface Cone {
  readonly graph: Graph;
  readonly want: Uint8Array;
  /** Upstream targets outside the cones (local indices). */
  readonly clean: Uint8Array;
  /** Wanted targets with a step in the whole graph. */
  readonly wanted: number;
  /** Wanted targets with a step outside the sub-graph. */
  readonly outside: string[];
  /** Every wanted target's outputs (decodes every record of `cache`). */
  outputs(cache: CachedGraph): Record<string, Record<string, string>>;
}

function coneOf(cache: CachedGraph, loaded: LoadedConfig, changed: ReadonlySet<string>): Cone | undefined {
  try {
    const prefix = loaded.root + sep;
    const n = cache.targetCount;
    // 1 = in a changed cone, 2 = read by the cones.
    const mark = new Uint8Array(n);
    const stack: number[] = [];
    for (const abs of changed) {
      if (!abs.startsWith(prefix)) return undefined;
      let hit = false;
      for (const i of cache.targetsOf(abs.slice(prefix.length))) {
        if (!cache.wanted(i)) continue;
        stack.push(i);
        hit = true;
      }
      // The snapshot watches a file no wanted target uses: they do not belong together.
      if (!hit) return undefined;
    }
    const dirty: number[] = [];
    while (stack.length > 0) {
      const i = stack.pop()!;
      if (mark[i] === 1) continue;
      mark[i] = 1;
      dirty.push(i);
      for (const d of cache.dependents(i)) if (mark[d] !== 1 && cache.wanted(d)) stack.push(d);
    }
    for (const i of dirty) {
      for (const d of cache.record(i).dp) {
        if (!(Number.isInteger(d) && d >= 0 && d < n && cache.wanted(d))) return undefined;
        if (mark[d] === 0) mark[d] = 2;
      }
    }
    const select: number[] = [];
    const outside: string[] = [];
    let wanted = 0;
    const flags = cache.flags();
    const names = cache.names();
    for (let i = 0; i < n; i++) {
      if (mark[i] !== 0) select.push(i);
      const f = flags[i]!;
      if (!wantedIn(f) || groupIn(f)) continue;
      // Steps only, as the builder counts them.
      wanted++;
      if (mark[i] === 0) outside.push(names[i]!);
    }
    const targets = cache.targets(select, (i) => mark[i] === 1);
    const clean = new Uint8Array(select.length);
    select.forEach((g, k) => (clean[k] = mark[g] === 2 ? 1 : 0));
    const root = loaded.root;
    return {
      graph: cache.graph(loaded, targets, select),
      want: new Uint8Array(select.length).fill(1),
      clean,
      wanted,
      outside,
      outputs(cache) {
        const out: Record<string, Record<string, string>> = {};
        for (let i = 0; i < n; i++) {
          if (!cache.wanted(i)) continue;
          const o = cache.record(i).o;
          if (o.length > 0) out[cache.name(i)] = Object.fromEntries(o.map(([name, , path]) => [name, join(root, path)]));
        }
        return out;
      },
    };
  } catch (err) {
    if (isCacheDamage(err) || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** The whole cached graph, or undefined if the cache is damaged. */
function fullGraph(cache: CachedGraph, loaded: LoadedConfig): Graph | undefined {
  try {
    return cache.graph(
      loaded,
      cache.targets(
        Array.from({length: cache.targetCount}, (_, i) => i),
        () => true,
      ),
    );
  } catch (err) {
    if (isCacheDamage(err) || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** Whether every upstream the cone reads has a record of its current outputs. */
function settledFromRecords(cone: Cone, log: StateLog): boolean {
  for (const t of cone.graph.targets) {
    if (cone.clean[t.index] !== 1 || t.config.command === undefined) continue;
    const rec = log.targets.get(t.name);
    if (rec === undefined || rec.outputs.length !== t.outputs.length || rec.outputs.some((o, k) => o.path !== t.outputs[k]!.path)) return false;
  }
  return true;
}

/**
 * The snapshot entries a cone build changes, with the stats it used: the changed files
 * and the outputs of every target in the cones. Undefined when the build used a tool
 * the snapshot does not watch, a file is gone, or a target in the cones has a directory
 * output (the snapshot watches its folders, which the old tree may not have had: the
 * next build writes the whole snapshot again).
 */
function conePatches(
  cone: Cone,
  changed: ChangedFiles,
  stats: StatCache,
  executables: ReadonlyArray<readonly [string, readonly number[]]>,
): Map<string, SnapshotEntry['stat']> | undefined {
  const watched = new Map(changed.tools.map((e) => [e.path, e.stat]));
  for (const [path, stat] of executables) {
    const was = watched.get(path);
    if (was === undefined || !sameTuple(was, stat)) return undefined;
  }
  const root = cone.graph.root;
  const patches = new Map<string, SnapshotEntry['stat']>();
  const add = (rel: string): boolean => {
    const st = stats.get(rel);
    if (st === undefined) return false;
    patches.set(root + sep + rel, [st.size, st.mtimeMs, st.ctimeMs, st.ino]);
    return true;
  };
  const prefix = root + sep;
  for (const abs of changed.changed) if (!abs.startsWith(prefix) || !add(abs.slice(prefix.length))) return undefined;
  for (const t of cone.graph.targets) {
    if (cone.clean[t.index] === 1) continue;
    for (const o of t.outputs) if (o.kind === 'dir' || !add(o.path)) return undefined;
  }
  return patches;
}

/** The config as the snapshot vouches for it, without evaluating it. */
function cachedConfig(options: BuildOptions, changed: ChangedFiles, identity: string): LoadedConfig {
  const configPath = findConfig(options.cwd, options.configPath);
  return {
    root: dirname(configPath),
    configPath,
    config: {targets: []},
    modules: [],
    identity,
    readFiles: changed.configReads.map((e) => e.path),
    moduleIdentity: () => undefined,
  };
}

/**
 * The files a no-op snapshot must watch, with the stats the build used; undefined if
 * unsupported. `configReads` comes back longer: the folders a glob walks are watched like
 * the files the config read (an entry added or removed there changes the graph itself).
 * A directory output is watched by its folders (its own stat does not show changes deep
 * inside it): a folder's mtime shows an entry added, removed, renamed or replaced; a file
 * edited in place is trusted, as the full check trusts it.
 */
function snapshotEntries(
  graph: Graph,
  want: Uint8Array,
  stats: StatCache,
  tools: ReadonlyMap<string, SnapshotEntry['stat']>,
  configReads: readonly SnapshotEntry[],
): {entries: SnapshotEntry[]; configReads: number} | undefined {
  const entries: SnapshotEntry[] = [...configReads];
  const seen = new Set<string>(configReads.map((e) => e.path));
  const prefix = graph.root + sep;
  const abs = (rel: string) => (isAbsolute(rel) ? rel : prefix + rel);
  for (const dir of globFolders(graph, want)) {
    const path = abs(dir);
    if (seen.has(path)) continue;
    seen.add(path);
    entries.push({path, stat: statTuple(path)});
  }
  const reads = entries.length;
  const add = (rel: string): boolean => {
    const path = abs(rel);
    if (seen.has(path)) return true;
    seen.add(path);
    const st = stats.get(rel);
    if (st === undefined) return false;
    entries.push({path, stat: [st.size, st.mtimeMs, st.ctimeMs, st.ino]});
    return true;
  };
  // An output tree's folders, the root included: the check FileHasher.output makes (see
  // walkTree in file-hasher.ts). Links are not followed; files are not watched.
  const addTree = (rel: string): boolean => {
    if (!add(rel)) return false;
    const walk = (dir: string): boolean => {
      let list: Dirent[];
      try {
        list = readdirSync(prefix + dir, {withFileTypes: true});
      } catch {
        return false;
      }
      for (const e of list) {
        if (!e.isDirectory()) continue;
        const child = `${dir}/${e.name}`;
        const path = prefix + child;
        if (seen.has(path)) continue;
        seen.add(path);
        entries.push({path, stat: statTuple(path)});
        if (!walk(child)) return false;
      }
      return true;
    };
    return walk(rel);
  };
  for (const t of graph.targets) {
    if (!want[t.index]) continue;
    for (const input of t.inputs) {
      for (const item of input.items) if (item.kind === 'file' && !add(item.path)) return undefined;
    }
    for (const o of t.outputs) if (!(o.kind === 'dir' ? addTree(o.path) : add(o.path))) return undefined;
  }
  entries.push(TOOLS_MARK);
  for (const [path, stat] of tools) entries.push({path, stat});
  return {entries, configReads: reads};
}

/**
 * The folders the wanted targets' globs look in (relative to the root, or absolute):
 * the pattern's fixed base and, when the pattern reaches below it, every folder under
 * it that the glob does not ignore.
 */
function globFolders(graph: Graph, want: Uint8Array): Set<string> {
  const out = new Set<string>();
  const ignored = new Set([graph.outDir, 'cache', 'node_modules', '.git'].map((d) => graph.root + sep + d));
  const walk = (dir: string) => {
    if (out.has(dir)) return;
    out.add(dir);
    let list: Dirent[];
    try {
      list = readdirSync(dir, {withFileTypes: true});
    } catch {
      return;
    }
    for (const e of list) {
      const child = dir + sep + e.name;
      if (ignored.has(child)) continue;
      // fast-glob follows links to folders: so does the walk (a loop ends at the seen check).
      if (e.isDirectory() || (e.isSymbolicLink() && isDir(child))) walk(child);
    }
  };
  for (const t of graph.targets) {
    if (!want[t.index]) continue;
    for (const input of t.inputs) {
      for (const pattern of input.globs) {
        const parts = pattern.split('/');
        const magic = parts.findIndex((p) => /[*?[\]{}()!+@]/.test(p));
        const base = resolve(graph.root, parts.slice(0, magic === -1 ? parts.length : magic).join('/') || '.');
        // A pattern whose magic is only in its last part lists one folder.
        if (magic === parts.length - 1 && !parts[magic]!.includes('**')) out.add(base);
        else walk(base);
      }
    }
  }
  return out;
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The input and output files of the wanted targets (relative to the root). */
function* wantedFiles(graph: Graph, want: Uint8Array): Generator<string> {
  for (const t of graph.targets) {
    if (!want[t.index]) continue;
    for (const input of t.inputs) for (const item of input.items) if (item.kind === 'file') yield item.path;
    for (const o of t.outputs) if (o.kind === 'file') yield o.path;
  }
}

/** Separates input/output entries from tool entries until the counts are taken. */
const TOOLS_MARK: SnapshotEntry = {path: '', stat: [-1, -1, -1, -1]};

function sameTuple(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Wanted targets the snapshot proves up to date: none of their input or output files
 * (or folders of their output trees) changed, and none of their upstream targets is in
 * the cone of a changed file. Undefined when a changed path belongs to no wanted target.
 */
function cleanTargets(graph: Graph, want: Uint8Array, changed: ReadonlySet<string>): Uint8Array | undefined {
  const n = graph.targets.length;
  const dirty = new Uint8Array(n);
  const stack: number[] = [];
  const prefix = graph.root + sep;
  const owned = new Set<string>();
  for (const t of graph.targets) {
    if (!want[t.index]) continue;
    let hit = false;
    const mine = (abs: string) => {
      owned.add(abs);
      hit = true;
    };
    for (const input of t.inputs) {
      for (const item of input.items) if (item.kind === 'file' && changed.has(prefix + item.path)) mine(prefix + item.path);
    }
    for (const o of t.outputs) {
      const abs = prefix + o.path;
      if (changed.has(abs)) mine(abs);
      if (o.kind === 'dir') for (const c of changed) if (c.startsWith(abs + sep)) mine(c);
    }
    if (hit) stack.push(t.index);
  }
  for (const c of changed) if (!owned.has(c)) return undefined;
  while (stack.length > 0) {
    const i = stack.pop()!;
    if (dirty[i]) continue;
    dirty[i] = 1;
    for (const d of graph.targets[i]!.dependents) if (want[d] && !dirty[d]) stack.push(d);
  }
  const clean = new Uint8Array(n);
  for (let i = 0; i < n; i++) clean[i] = want[i]! & (dirty[i]! ^ 1);
  return clean;
}

/** The no-op's result, or undefined when the snapshot's result part is corrupt (the full check decides). */
function fastResult(fast: FastResult, root: string, logger: BuildLogger): BuildResult | undefined {
  let upToDate: readonly string[];
  let outputs: Record<string, Record<string, string>>;
  try {
    upToDate = fast.upToDate;
    outputs = fast.outputs;
  } catch {
    return undefined;
  }
  // Same rule as a full build: one build at a time per state folder.
  BuildLock.acquire(fast.stateDir).release();
  logger.event({type: 'plan', total: upToDate.length});
  for (const target of upToDate) logger.event({type: 'fresh', target});
  return {
    ok: true,
    ran: [],
    steps: [],
    upToDate,
    failed: [],
    skipped: [],
    wouldRun: [],
    interrupted: false,
    outputs,
    root,
  };
}

function madeOnly(all: Record<string, Record<string, string>>, made: ReadonlySet<string>): Record<string, Record<string, string>> {
  return Object.fromEntries(Object.entries(all).filter(([name]) => made.has(name)));
}

/** Temporaries left by a killed build (we hold the lock, so nobody else owns them). */
function removeStaleTemporaries(tmpRoot: string): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpRoot);
  } catch {
    return;
  }
  for (const e of entries) rmSync(join(tmpRoot, e), {recursive: true, force: true});
}
