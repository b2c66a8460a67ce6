/**
 * The programmatic build: load the config, analyse it, take the lock, replay the state
 * log, run the builder. Used by `psy build`, `psy publish` and watch mode. It never
 * prints and never exits: it reports through the injected logger and returns a result.
 */
import {availableParallelism} from 'node:os';
import {join} from 'node:path';
import {readdirSync, rmSync} from 'node:fs';
import {Builder} from './builder.js';
import type {BuildLogger} from './events.js';
import {silentLogger} from './events.js';
import {FileHasher, StatCache} from './file-hasher.js';
import {analyze, closure, type Graph} from './graph.js';
import {initHash} from './hash.js';
import {loadConfig, type LoadedConfig} from './load-config.js';
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
  readonly graph: Graph;
}

export async function build(options: BuildOptions): Promise<BuildResult> {
  const logger = options.logger ?? silentLogger;
  const hashReady = initHash();
  const loaded = options.loaded ?? (await loadConfig({cwd: options.cwd, ...(options.configPath === undefined ? {} : {configPath: options.configPath})}));
  const stats = new StatCache(loaded.root);
  const graph = analyze(loaded, stats.get);
  const names = options.targets !== undefined && options.targets.length > 0 ? options.targets : graph.defaults;
  const want = closure(graph, names);
  await hashReady;
  const dryRun = options.dryRun === true;
  const warn = (message: string) => logger.event({type: 'warning', message});
  const lock = dryRun ? undefined : BuildLock.acquire(graph.stateDir, (pid) => warn(`took over the build lock of pid ${pid}, which no longer runs`));
  const tmpRoot = join(graph.root, graph.outDir, '.psy-tmp');
  let log: StateLog | undefined;
  try {
    if (lock !== undefined) removeStaleTemporaries(tmpRoot);
    log = StateLog.open(graph.stateDir, {readOnly: dryRun, warn});
    const files = new FileHasher(graph.root, log, stats);
    const env = options.env ?? process.env;
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
    });
    const r = await builder.run();
    log.flush();
    if (!dryRun) log.compactIfNeeded();
    const outputs: Record<string, Record<string, string>> = {};
    for (const t of graph.targets) {
      if (!want[t.index] || t.outputs.length === 0) continue;
      outputs[t.name] = Object.fromEntries(t.outputs.map((o) => [o.name, join(graph.root, o.path)]));
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
      graph,
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
