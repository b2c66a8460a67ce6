/**
 * Watch mode: keep the requested targets up to date while their inputs change.
 *
 *                 change                      quiet period over
 *   ┌──────────┐ ───────▶ ┌────────────┐ ─────────────────────▶ ┌─────────┐
 *   │ watching │          │ debouncing │ ◀─┐ change:             │ running │
 *   └──────────┘ ◀─────── └────────────┘ ──┘ restart the timer   └─────────┘
 *        ▲   build done, nothing queued         ▲                  │     ▲
 *        └──────────────────────────────────────┼──────────────────┘     │ change
 *                                               │ build done        ┌────┴───┐
 *                                               └───────────────────│ queued │
 *                                                                   └────────┘
 *
 * A change that arrives while a build runs is never lost: it moves the machine to
 * `queued`, and one more build follows (after a fresh quiet period, so the rest of an
 * editor's burst joins it). Bursts (an editor writing a temporary file, renaming it,
 * touching the folder) restart the quiet timer, up to a maximum wait, so one save is
 * one build. Every build is an ordinary engine build of the same targets: the engine
 * decides from content hashes which part of the cone is stale, so a save that changed
 * nothing runs nothing. The config is loaded again before every build; its compile cache
 * makes that a few stat calls unless it (or a module it imports) changed, in which case
 * the graph is rebuilt from the new config.
 *
 * Nothing here prints: the outside world hears WatchEvents and the engine's BuildEvents
 * through injected loggers.
 */
import {statSync} from 'node:fs';
import {dirname, relative} from 'node:path';
import {isPsyError} from '../errors.js';
import {build as engineBuild, type BuildOptions, type BuildResult} from './build.js';
import type {BuildLogger} from './events.js';
import {analyze} from './graph.js';
import {findConfig, loadConfig, type LoadedConfig} from './load-config.js';
import {InputWatcher, type ChangeKind, type FileChange, type WatchSummary} from './watch-files.js';
import {configWatchSet, mergeWatchSets, watchSetOf, type WatchSet} from './watch-inputs.js';

export type WatchState = 'starting' | 'watching' | 'debouncing' | 'running' | 'queued' | 'stopped';

export interface Trigger {
  readonly kind: ChangeKind;
  /** Relative to the project root. */
  readonly path: string;
  readonly config: boolean;
}

export type WatchEvent =
  /** What is being watched (after the first analysis, and whenever it changes). */
  | {readonly type: 'watching'; readonly summary: WatchSummary; readonly targets: readonly string[]}
  /** A build starts; `triggers` is empty for the first build. */
  | {readonly type: 'build-start'; readonly build: number; readonly triggers: readonly Trigger[]}
  /** The engine returned (success, failed steps or interrupted). */
  | {readonly type: 'build-done'; readonly build: number; readonly result: BuildResult; readonly durationMs: number}
  /** The build could not start or run: config or graph error, lock held, internal error. */
  | {
      readonly type: 'build-error';
      readonly build: number;
      readonly message: string;
      /** The PsyError code (`no-config`, `missing-input`, ...), undefined if internal. */
      readonly code: string | undefined;
      /** Set when the build is tried again by itself (another build held the lock). */
      readonly retryInMs: number | undefined;
      /** False for PsyErrors (user mistakes), true for anything unexpected. */
      readonly internal: boolean;
      readonly durationMs: number;
    }
  /** Back to waiting for changes. */
  | {readonly type: 'idle'}
  | {readonly type: 'error'; readonly message: string};

export interface WatchOptions {
  readonly cwd: string;
  readonly configPath?: string;
  /** Requested targets; empty = the config's defaults. */
  readonly targets: readonly string[];
  readonly jobs?: number;
  readonly keepGoing?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Quiet period after the last change before a build starts (ms). */
  readonly debounceMs?: number;
  /** Longest a build waits behind a continuous stream of changes (ms). */
  readonly maxWaitMs?: number;
  readonly onEvent: (e: WatchEvent) => void;
  /** Every state transition (for tests and debugging). */
  readonly onState?: (state: WatchState) => void;
  /** The engine logger for one build (a fresh status printer each time). */
  readonly buildLogger: (build: number) => BuildLogger;
  /** The engine's build; replaceable so the state machine can be driven in isolation. */
  readonly build?: (options: BuildOptions) => Promise<BuildResult>;
}

export const DEFAULT_DEBOUNCE_MS = 60;
export const DEFAULT_MAX_WAIT_MS = 250;
/** Wait before trying again when another build holds the project's lock (doubling up to the cap). */
export const LOCKED_RETRY_MS = 1000;
const LOCKED_RETRY_MAX_MS = 16_000;

export class Watcher {
  readonly #o: WatchOptions;
  readonly #files: InputWatcher;
  readonly #build: (options: BuildOptions) => Promise<BuildResult>;
  #stateValue: WatchState = 'starting';
  /** Changes not yet handed to a build, by absolute path. */
  readonly #pending = new Map<string, FileChange>();
  /** Data files the config read, over every evaluation (a cached config reads nothing). */
  readonly #configReads = new Set<string>();
  /** State of each triggering file when the build it triggered started (see fileState). */
  readonly #consumed = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #firstChangeAt = 0;
  #buildCount = 0;
  #abort: AbortController | undefined;
  #set: WatchSet | undefined;
  /** The config object the last build ran with (the loader returns the same object while unchanged). */
  #lastConfig: unknown;
  #lastSummary = '';
  /** The last build found the project locked by another build; retry its changes. */
  #retryLocked = false;
  #lockedRetries = 0;
  #root: string | undefined;
  #running: Promise<void> | undefined;
  #stopped!: () => void;
  readonly #whenStopped = new Promise<void>((resolve) => (this.#stopped = resolve));

  constructor(options: WatchOptions) {
    this.#o = options;
    this.#build = options.build ?? engineBuild;
    this.#files = new InputWatcher(
      (c) => this.#change(c),
      (message) => this.#o.onEvent({type: 'error', message: `file watcher: ${message}`}),
    );
  }

  get state(): WatchState {
    return this.#stateValue;
  }

  get #state(): WatchState {
    return this.#stateValue;
  }

  set #state(next: WatchState) {
    if (next === this.#stateValue) return;
    this.#stateValue = next;
    this.#o.onState?.(next);
  }

  /** Run the first build and keep watching; resolves after stop(). */
  async run(): Promise<void> {
    this.#startBuild();
    await this.#whenStopped;
  }

  /** Stop watching: abort a running build (its steps are killed) and close the watchers. */
  async stop(reason = 'SIGINT'): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#abort?.abort(reason);
    await this.#running;
    await this.#files.close();
    this.#stopped();
  }

  #change(c: FileChange): void {
    if (c.configRead === true) {
      // An already evaluated config module is not evaluated again in this process (the
      // module cache), so a data file it read cannot be picked up by a reload.
      const rel = this.#root === undefined ? c.path : relative(this.#root, c.path);
      this.#o.onEvent({type: 'error', message: `${rel} ${c.kind}, which the config read when it was loaded; restart psy build --watch to load it again`});
      return;
    }
    // A late event of a save the last build already started from (the event loop was
    // busy, or one save produced events far apart) would start an empty build.
    if (!this.#pending.has(c.path) && this.#consumed.get(c.path) === fileState(c.path)) return;
    const prev = this.#pending.get(c.path);
    // deleted then added again within one burst is an atomic save: a change.
    const kind: ChangeKind = prev?.kind === 'deleted' && c.kind === 'added' ? 'changed' : c.kind;
    this.#pending.set(c.path, {...c, kind});
    switch (this.#state) {
      case 'watching':
        this.#state = 'debouncing';
        this.#firstChangeAt = Date.now();
        this.#arm();
        return;
      case 'debouncing':
        this.#arm();
        return;
      case 'running':
        this.#state = 'queued';
        return;
      case 'starting':
      case 'queued':
      case 'stopped':
        return;
      default: {
        const never: never = this.#state;
        throw new Error(`unknown watch state ${String(never)}`);
      }
    }
  }

  /** (Re)start the quiet timer, never past the maximum wait since the first change. */
  #arm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const quiet = this.#o.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    const maxWait = this.#o.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    const left = this.#firstChangeAt + maxWait - Date.now();
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        if (this.#state === 'debouncing') this.#startBuild();
      },
      Math.max(0, Math.min(quiet, left)),
    );
  }

  #startBuild(): void {
    this.#state = 'running';
    this.#running = this.#runBuild().finally(() => (this.#running = undefined));
  }

  async #runBuild(): Promise<void> {
    const n = ++this.#buildCount;
    this.#retryLocked = false;
    const root = this.#root;
    const triggers = [...this.#pending.values()]
      .map((c) => ({kind: c.kind, path: root === undefined ? c.path : relative(root, c.path), config: c.config}))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const changes = [...this.#pending.values()];
    for (const path of this.#pending.keys()) this.#consumed.set(path, fileState(path));
    this.#pending.clear();
    this.#o.onEvent({type: 'build-start', build: n, triggers});
    const started = Date.now();
    const abort = new AbortController();
    this.#abort = abort;
    let loaded: LoadedConfig | undefined;
    try {
      loaded = await loadConfig({cwd: this.#o.cwd, ...(this.#o.configPath === undefined ? {} : {configPath: this.#o.configPath})});
      this.#root = loaded.root;
      // A new or changed config may declare inputs not watched yet: watch them before
      // building, so a save during the build is not missed. Otherwise skip this second
      // analysis (the engine analyses again), it sits between the save and the build.
      if (loaded.config !== this.#lastConfig || this.#set === undefined) {
        for (const f of loaded.readFiles) this.#configReads.add(f);
        await this.#watch(watchSetOf(analyze(loaded), this.#o.targets, this.#configReads));
        if (this.#state === 'stopped') return;
      }
      const result = await this.#build({
        cwd: this.#o.cwd,
        loaded,
        targets: this.#o.targets,
        ...(this.#o.jobs === undefined ? {} : {jobs: this.#o.jobs}),
        ...(this.#o.keepGoing === undefined ? {} : {keepGoing: this.#o.keepGoing}),
        ...(this.#o.env === undefined ? {} : {env: this.#o.env}),
        logger: this.#o.buildLogger(n),
        signal: abort.signal,
      });
      this.#lastConfig = loaded.config;
      this.#lockedRetries = 0;
      // Glob matches may have changed; new files under a glob base are seen regardless.
      if (!result.interrupted && result.graph !== undefined) await this.#watch(watchSetOf(result.graph, this.#o.targets, this.#configReads));
      this.#o.onEvent({type: 'build-done', build: n, result, durationMs: Date.now() - started});
    } catch (err) {
      if (isPsyError(err) && err.code === 'locked' && this.#state !== 'stopped') {
        // Another build holds the project: these changes are not built yet. Try again.
        for (const c of changes) {
          if (!this.#pending.has(c.path)) this.#pending.set(c.path, c);
          this.#consumed.delete(c.path);
        }
        this.#retryLocked = true;
        this.#lockedRetries++;
      } else {
        this.#lockedRetries = 0;
      }
      // Keep watching what we know, plus the config, so the fix is seen.
      if (loaded !== undefined) await this.#watch(configWatchSet(loaded), true);
      else if (this.#set === undefined) await this.#watch(this.#configOnlySet(), true);
      this.#o.onEvent({
        type: 'build-error',
        build: n,
        message: err instanceof Error ? (isPsyError(err) ? err.message : (err.stack ?? err.message)) : String(err),
        code: isPsyError(err) ? err.code : undefined,
        retryInMs: this.#retryLocked ? lockedRetryDelay(this.#lockedRetries) : undefined,
        internal: !isPsyError(err),
        durationMs: Date.now() - started,
      });
    } finally {
      this.#abort = undefined;
    }
    this.#afterBuild();
  }

  #afterBuild(): void {
    switch (this.#state) {
      case 'stopped':
        return;
      case 'queued':
        this.#state = 'debouncing';
        this.#firstChangeAt = Date.now();
        this.#arm();
        return;
      case 'running':
        if (this.#retryLocked) {
          this.#retryLocked = false;
          this.#state = 'debouncing';
          if (this.#timer !== undefined) clearTimeout(this.#timer);
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            if (this.#state === 'debouncing') this.#startBuild();
          }, lockedRetryDelay(this.#lockedRetries));
          return;
        }
        this.#state = 'watching';
        this.#o.onEvent({type: 'idle'});
        return;
      case 'starting':
      case 'watching':
      case 'debouncing':
        throw new Error(`watch: a build ended in state ${this.#state}`);
      default: {
        const never: never = this.#state;
        throw new Error(`unknown watch state ${String(never)}`);
      }
    }
  }

  /** Switch the file watchers to `set` (merged into the current one if `keep`). */
  async #watch(next: WatchSet, keep = false): Promise<void> {
    const set = keep && this.#set !== undefined ? mergeWatchSets(this.#set, next) : next;
    this.#set = set;
    await this.#files.update(set);
    const summary = this.#files.summary();
    const key = JSON.stringify(summary);
    if (key !== this.#lastSummary) {
      this.#lastSummary = key;
      this.#o.onEvent({type: 'watching', summary, targets: this.#o.targets});
    }
  }

  /** The config file alone, when it could not even be loaded. */
  #configOnlySet(): WatchSet {
    const configPath = findConfig(this.#o.cwd, this.#o.configPath);
    return configWatchSet({root: dirname(configPath), configPath, modules: [], readFiles: []});
  }
}

/** A file's identity as far as a change is concerned: stat data, or 'missing'. */
function fileState(path: string): string {
  const st = statSync(path, {throwIfNoEntry: false, bigint: true});
  return st === undefined ? 'missing' : `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** Delay before the n-th (1-based) retry of a build locked out by another build. */
export function lockedRetryDelay(n: number): number {
  return Math.min(LOCKED_RETRY_MAX_MS, LOCKED_RETRY_MS * 2 ** Math.max(0, n - 1));
}
