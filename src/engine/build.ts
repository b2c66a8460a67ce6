/**
 * The programmatic build: load the config, analyse it, take the lock, replay the state
 * log, run the builder. Used by `psy build`, `psy publish` and watch mode. It never
 * prints and never exits: it reports through the injected logger and returns a result.
 */
import {availableParallelism} from 'node:os';
import {dirname, join, resolve, sep} from 'node:path';
import {readdirSync, rmSync, statSync} from 'node:fs';
import {Builder} from './builder.js';
import type {BuildLogger} from './events.js';
import {silentLogger} from './events.js';
import {FileHasher, StatCache} from './file-hasher.js';
import {analyze, closure, type Graph} from './graph.js';
import {graphCachePath, readCachedGraph, serializeGraph} from './graph-cache.js';
import {initHash} from './hash.js';
import {loadConfig, writeAtomic, type LoadedConfig} from './load-config.js';
import {noopCheck, type NoopCheck} from './noop-check.js';
import {currentLogTuple, removeSnapshot, snapshotPath, writeSnapshot, type ChangedFiles, type FastResult, type SnapshotEntry} from './noop-snapshot.js';
import {BuildLock} from './lock.js';
import {StateLog} from './state-log.js';
import {ToolVersions} from './tools.js';

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
  /** Targets found up to date. */
  readonly upToDate: readonly string[];
  readonly failed: ReadonlyArray<{readonly target: string; readonly message: string}>;
  /** Targets not run because a dependency failed. */
  readonly skipped: readonly string[];
  /** Dry run: targets that would run, with the first reason. */
  readonly wouldRun: ReadonlyArray<{readonly target: string; readonly reason: string}>;
  readonly interrupted: boolean;
  /** Every considered target's outputs: name → absolute path. */
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
  if (changedFiles?.graph !== undefined && snapshotFile !== undefined && checkedIdentity !== undefined) {
    // Only input and output files changed: the graph analysed last time stands.
    const stub = cachedConfig(options, changedFiles, checkedIdentity);
    graph = readCachedGraph(graphCachePath(snapshotFile), changedFiles.graph, stub);
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
  if (changedFiles !== undefined) stats.seed(changedFiles.stats);
  if (graph !== undefined) {
    configReads = [...changedFiles!.configReads];
  } else {
    configReads = loaded.readFiles.map((path): SnapshotEntry => ({path, stat: tupleOf(path)}));
    graph = analyze(loaded, stats.get);
  }
  const names = options.targets !== undefined && options.targets.length > 0 ? options.targets : graph.defaults;
  const want = closure(graph, names);
  // Without a snapshot's stats, every wanted target's files are stat'ed in one batch.
  if (changedFiles === undefined) stats.prefetch(wantedFiles(graph, want));
  await hashReady;
  const warn = (message: string) => logger.event({type: 'warning', message});
  const lock = dryRun ? undefined : BuildLock.acquire(graph.stateDir, (pid) => warn(`took over the build lock of pid ${pid}, which no longer runs`));
  const tmpRoot = join(graph.root, graph.outDir, '.psy-tmp');
  let log: StateLog | undefined;
  try {
    if (lock !== undefined) {
      removeStaleTemporaries(tmpRoot);
      removeSnapshot(snapshotFile);
    }
    // The snapshot vouches for the log's records only if nobody wrote the log since.
    let clean: Uint8Array | undefined;
    if (changedFiles !== undefined && changedFiles.stateDir === graph.stateDir && sameTuple(currentLogTuple(graph.stateDir), changedFiles.log)) {
      clean = cleanTargets(graph, want, changedFiles.changed);
    }
    log = StateLog.open(graph.stateDir, {readOnly: dryRun, warn});
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
    });
    const r = await builder.run();
    log.flush();
    if (!dryRun) log.compactIfNeeded();
    const outputs: Record<string, Record<string, string>> = {};
    for (const t of graph.targets) {
      if (!want[t.index] || t.outputs.length === 0) continue;
      outputs[t.name] = Object.fromEntries(t.outputs.map((o) => [o.name, join(graph.root, o.path)]));
    }
    if (!dryRun && options.loaded === undefined && r.failed.length === 0 && !r.interrupted && r.skipped.length === 0) {
      // Targets taken as clean never asked for their tools: keep the tools the snapshot
      // watched (unchanged, or there would be no cone check).
      const toolEntries = new Map<string, SnapshotEntry['stat']>(clean === undefined ? [] : changedFiles!.tools.map((e) => [e.path, e.stat]));
      for (const [path, stat] of tools.executables()) toolEntries.set(path, stat);
      const entries = snapshotEntries(graph, want, stats, toolEntries, configReads);
      if (entries !== undefined) {
        if (graphId === undefined) {
          graphId = `${buildStart}-${process.pid}`;
          const text = serializeGraph(graph, graphId);
          if (text === undefined) graphId = undefined;
          else writeAtomic(graphCachePath(snapshotFile), text);
        }
        const counts = {configReads: configReads.length, tools: entries.length - entries.indexOf(TOOLS_MARK) - 1};
        entries.splice(entries.indexOf(TOOLS_MARK), 1);
        writeSnapshot(
          snapshotFile,
          {identity: loaded.identity, targets: requested, envPath: env['PATH'] ?? '', stateDir: graph.stateDir, upToDate: [...r.fresh, ...r.ran], outputs, ...(graphId === undefined ? {} : {graph: graphId})},
          entries,
          counts,
          buildStart,
          writeAtomic,
        );
      }
    }
    if (r.interrupted) logger.event({type: 'interrupted', signal: options.signal?.reason instanceof Error ? 'abort' : String(options.signal?.reason ?? 'abort')});
    return {
      ok: r.failed.length === 0 && !r.interrupted,
      ran: r.ran,
      upToDate: r.fresh,
      failed: r.failed,
      skipped: r.skipped,
      wouldRun: r.wouldRun,
      interrupted: r.interrupted,
      outputs,
      root: graph.root,
      // A graph from the cache has no evaluated config behind it.
      ...(graphFromCache ? {} : {graph}),
    };
  } finally {
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

/** The config as the snapshot vouches for it, without evaluating it. */
function cachedConfig(options: BuildOptions, changed: ChangedFiles, identity: string): LoadedConfig {
  const configPath = resolve(options.cwd, options.configPath ?? 'build.config.ts');
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

function tupleOf(path: string): [number, number, number, number] {
  const st = statSync(path, {throwIfNoEntry: false});
  return st === undefined ? [-1, -1, -1, -1] : [st.size, st.mtimeMs, st.ctimeMs, st.ino];
}

/** The files a no-op snapshot must watch, with the stats the build used; undefined if unsupported. */
function snapshotEntries(graph: Graph, want: Uint8Array, stats: StatCache, tools: ReadonlyMap<string, SnapshotEntry['stat']>, configReads: SnapshotEntry[]): SnapshotEntry[] | undefined {
  const entries: SnapshotEntry[] = [...configReads];
  const seen = new Set<string>();
  const add = (rel: string): boolean => {
    if (seen.has(rel)) return true;
    seen.add(rel);
    const st = stats.get(rel);
    if (st === undefined) return false;
    entries.push({path: graph.root + sep + rel, stat: [st.size, st.mtimeMs, st.ctimeMs, st.ino]});
    return true;
  };
  for (const t of graph.targets) {
    if (!want[t.index]) continue;
    for (const input of t.inputs) {
      // New files matching a glob cannot be seen by stat alone.
      if (input.globs.length > 0) return undefined;
      for (const item of input.items) if (item.kind === 'file' && !add(item.path)) return undefined;
    }
    for (const o of t.outputs) {
      // A directory's own stat does not show changes deep inside it.
      if (o.kind === 'dir' || !add(o.path)) return undefined;
    }
  }
  entries.push(TOOLS_MARK);
  for (const [path, stat] of tools) entries.push({path, stat});
  return entries;
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
 * changed, and none of their upstream targets is in the cone of a changed file.
 */
function cleanTargets(graph: Graph, want: Uint8Array, changed: ReadonlySet<string>): Uint8Array {
  const n = graph.targets.length;
  const dirty = new Uint8Array(n);
  const stack: number[] = [];
  const prefix = graph.root + sep;
  for (const t of graph.targets) {
    if (!want[t.index]) continue;
    let hit = false;
    for (const input of t.inputs) {
      for (const item of input.items) if (item.kind === 'file' && changed.has(prefix + item.path)) hit = true;
    }
    for (const o of t.outputs) if (changed.has(prefix + o.path)) hit = true;
    if (hit) stack.push(t.index);
  }
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
    upToDate,
    failed: [],
    skipped: [],
    wouldRun: [],
    interrupted: false,
    outputs,
    root,
  };
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
