/**
 * Execution (ninja's Plan + Builder in one): walks the wanted part of the graph in
 * dependency order, decides per target from content hashes whether it is stale once
 * every upstream is settled, and runs stale steps, at most `jobs` at a time and within
 * their pool's depth, the longest critical path first.
 *
 * A step writes into a private temporary folder; on success its outputs are renamed
 * into place, hashed, and only then is its record appended to the state log.
 */
import {lstatSync, mkdirSync, renameSync, rmSync} from 'node:fs';
import {rename} from 'node:fs/promises';
import {basename, dirname, join, relative} from 'node:path';
import {isPsyError, PsyError} from '../errors.js';
import {BuildLogFile} from './build-log.js';
import type {BuildEvent, BuildLogger} from './events.js';
import type {FileHasher} from './file-hasher.js';
import type {Graph, GraphTarget} from './graph.js';
import type {StepProcess} from './process.js';
import type {ShellPool} from './shell-pool.js';
import type {RuleContext, RunOptions, RunResult} from './rule.js';
import {computeKey, decide, outputProbe, type OutputHashes, type TargetKey, type Verdict} from './staleness.js';
import type {StateLog} from './state-log.js';
import type {ToolVersions} from './tools.js';

export interface BuilderOptions {
  readonly graph: Graph;
  readonly want: Uint8Array;
  readonly log: StateLog;
  readonly files: FileHasher;
  readonly tools: ToolVersions;
  readonly logger: BuildLogger;
  readonly jobs: number;
  /** Stop after this many failures; 0 = never stop early. */
  readonly keepGoing: number;
  readonly dryRun: boolean;
  readonly signal: AbortSignal | undefined;
  readonly env: NodeJS.ProcessEnv;
  /** Temporary folder for this run's steps (inside the output folder). */
  readonly tmpRoot: string;
  /**
   * Targets known up to date without looking (the no-op snapshot saw none of their
   * files change and none of their upstreams is in a changed cone): their recorded
   * output hashes stand.
   */
  readonly clean?: Uint8Array;
  /** Emit the plan event (default true; false when the caller announced the build). */
  readonly announce?: boolean;
}

export interface BuilderResult {
  readonly ran: string[];
  /** Every step that ran and succeeded, with its times (ms since the epoch). */
  readonly steps: Array<{target: string; start: number; end: number; durationMs: number}>;
  readonly fresh: string[];
  readonly failed: Array<{target: string; message: string}>;
  readonly skipped: string[];
  readonly wouldRun: Array<{target: string; reason: string}>;
  readonly interrupted: boolean;
}

// Loaded when the first step runs: a no-op build never pays for child_process.
let processModule: Promise<typeof import('./process.js')> | undefined;
let shellPoolModule: Promise<typeof import('./shell-pool.js')> | undefined;
const loadProcess = () => (processModule ??= import('./process.js'));
const loadShellPool = () => (shellPoolModule ??= import('./shell-pool.js'));

const enum S {
  Waiting = 0,
  Queued = 1,
  Running = 2,
  Done = 3,
  Failed = 4,
}

interface Job {
  readonly target: GraphTarget;
  readonly key: TargetKey;
  readonly started: number;
  readonly tmp: string;
  readonly abort: AbortController;
  readonly procs: Set<StepProcess>;
  /** Kill functions of steps running in shell workers. */
  readonly kills: Set<() => void>;
  readonly lines: string[];
  readonly aside: string[];
  scratch: boolean;
}

/** Binary max-heap of target indices by critical path. */
class ReadyQueue {
  readonly #items: number[] = [];
  constructor(readonly prio: (i: number) => number) {}
  get size(): number {
    return this.#items.length;
  }
  push(i: number): void {
    const a = this.#items;
    a.push(i);
    let c = a.length - 1;
    while (c > 0) {
      const p = (c - 1) >> 1;
      if (this.prio(a[p]!) >= this.prio(a[c]!)) break;
      [a[p], a[c]] = [a[c]!, a[p]!];
      c = p;
    }
  }
  pop(): number | undefined {
    const a = this.#items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let p = 0;
      for (;;) {
        const l = 2 * p + 1;
        const r = l + 1;
        let m = p;
        if (l < a.length && this.prio(a[l]!) > this.prio(a[m]!)) m = l;
        if (r < a.length && this.prio(a[r]!) > this.prio(a[m]!)) m = r;
        if (m === p) break;
        [a[p], a[m]] = [a[m]!, a[p]!];
        p = m;
      }
    }
    return top;
  }
}

export class Builder {
  readonly #o: BuilderOptions;
  readonly #g: Graph;
  readonly #state: Uint8Array;
  readonly #pending: Int32Array;
  readonly #keys: Array<TargetKey | undefined>;
  readonly #reasons: Array<string | undefined>;
  readonly #outHashes: OutputHashes;
  readonly #ready: ReadyQueue;
  readonly #evaluate: number[] = [];
  readonly #running = new Map<number, Job>();
  readonly #poolRunning = new Map<string, number>();
  readonly #parked = new Map<string, number[]>();
  readonly #result: BuilderResult = {ran: [], steps: [], fresh: [], failed: [], skipped: [], wouldRun: [], interrupted: false};
  #buildLog: BuildLogFile | undefined;
  readonly #madeDirs = new Set<string>();
  #stopping = false;
  #fatal: unknown;
  #done: (() => void) | undefined;
  #seq = 0;
  #shells: ShellPool | undefined;
  /** Jobs whose step ended and whose outputs are being moved into place (they hold no job slot). */
  #installing = 0;

  constructor(options: BuilderOptions) {
    this.#o = options;
    this.#g = options.graph;
    const n = this.#g.targets.length;
    this.#state = new Uint8Array(n);
    this.#pending = new Int32Array(n);
    this.#keys = new Array(n);
    this.#reasons = new Array(n);
    this.#outHashes = new Array(n);
    this.#ready = new ReadyQueue((i) => this.#g.targets[i]!.criticalPath);
  }

  async run(): Promise<BuilderResult> {
    const {want} = this.#o;
    let total = 0;
    for (const t of this.#g.targets) {
      if (!want[t.index]) continue;
      // Groups run nothing and report nothing: the count is of steps, so it reaches the total.
      if (!isGroup(t)) total++;
      this.#pending[t.index] = t.deps.length;
      if (t.deps.length === 0) this.#evaluate.push(t.index);
    }
    if (this.#o.announce !== false) this.#emit({type: 'plan', total});
    if (!this.#o.dryRun) mkdirSync(this.#o.tmpRoot, {recursive: true});
    const onAbort = () => this.#interrupt();
    this.#o.signal?.addEventListener('abort', onAbort);
    try {
      if (this.#o.signal?.aborted === true) this.#interrupt();
      await new Promise<void>((resolve) => {
        this.#done = resolve;
        this.#pump();
      });
    } finally {
      this.#o.signal?.removeEventListener('abort', onAbort);
      this.#buildLog?.close();
    }
    if (this.#fatal !== undefined) throw this.#fatal;
    return this.#result;
  }

  #emit(e: BuildEvent): void {
    this.#o.logger.event(e);
  }

  #interrupt(): void {
    if (this.#result.interrupted) return;
    (this.#result as {interrupted: boolean}).interrupted = true;
    this.#stopping = true;
    for (const job of this.#running.values()) {
      job.abort.abort();
      for (const p of job.procs) p.kill();
      for (const k of job.kills) k();
    }
    this.#pump();
  }

  /** Evaluate settled targets, start what may start, and detect the end. */
  #pump(): void {
    try {
      while (this.#evaluate.length > 0 && !this.#stopping) {
        this.#evaluateOne(this.#evaluate.pop()!);
      }
      while (!this.#stopping && this.#running.size - this.#installing < this.#o.jobs && this.#ready.size > 0) {
        const i = this.#ready.pop()!;
        const t = this.#g.targets[i]!;
        if (t.pool !== undefined) {
          const depth = this.#g.pools.get(t.pool)!;
          const used = this.#poolRunning.get(t.pool) ?? 0;
          if (used >= depth) {
            let parked = this.#parked.get(t.pool);
            if (parked === undefined) this.#parked.set(t.pool, (parked = []));
            parked.push(i);
            continue;
          }
          this.#poolRunning.set(t.pool, used + 1);
        }
        this.#start(t);
      }
    } catch (err) {
      this.#fatal ??= err;
      this.#stopping = true;
      for (const job of this.#running.values()) {
        job.abort.abort();
        for (const p of job.procs) p.kill();
        for (const k of job.kills) k();
      }
    }
    if (this.#running.size === 0 && (this.#stopping || (this.#ready.size === 0 && this.#evaluate.length === 0))) {
      const done = this.#done;
      this.#done = undefined;
      if (done !== undefined) {
        this.#shells?.close();
        this.#shells = undefined;
        done();
      }
    }
  }

  #evaluateOne(i: number): void {
    const t = this.#g.targets[i]!;
    const {files, tools, log} = this.#o;
    const group = isGroup(t);
    let verdict: Verdict = {run: 'need-key'};
    if (this.#o.clean?.[i] === 1) {
      verdict = decide(this.#g, t, group ? {kind: 'group'} : {kind: 'vouched', rec: log.targets.get(t.name)});
    } else if (group) {
      // In a dry run a group is stale while an upstream would rebuild, so explain (a dry
      // run) and build -n say the same of it.
      const up = this.#o.dryRun ? t.deps.find((d) => this.#outHashes[d] === undefined) : undefined;
      verdict = decide(this.#g, t, {kind: 'group', ...(up === undefined ? {} : {pending: this.#g.targets[up]!.name})});
    }
    let key: TargetKey | undefined;
    if (verdict.run === 'need-key') {
      key = computeKey(this.#g, t, files, tools, this.#outHashes);
      if (key === undefined) {
        // Dry run: an upstream would rebuild, so its output is not known yet.
        const up = t.deps.find((d) => this.#outHashes[d] === undefined);
        verdict = decide(this.#g, t, {kind: 'upstream-pending', upstream: this.#g.targets[up ?? t.deps[0]!]!.name});
      } else {
        verdict = decide(this.#g, t, {kind: 'keyed', key, rec: log.targets.get(t.name), outputs: outputProbe(t, files)});
      }
    }
    if (verdict.run === false) {
      this.#outHashes[i] = verdict.outputs;
      if (!group) {
        this.#result.fresh.push(t.name);
        this.#emit({type: 'fresh', target: t.name});
      }
      this.#complete(i);
      return;
    }
    if (verdict.run === 'need-key') throw new PsyError('internal', `internal: no verdict for target "${t.name}"`);
    if (this.#o.dryRun || key === undefined) {
      this.#markWouldRun(t, verdict.reason);
      return;
    }
    this.#keys[i] = key;
    this.#reasons[i] = verdict.reason;
    this.#state[i] = S.Queued;
    this.#ready.push(i);
  }

  #markWouldRun(t: GraphTarget, reason: string): void {
    this.#result.wouldRun.push({target: t.name, reason});
    this.#emit({type: 'would-run', target: t.name, reason, action: describeAction(t)});
    this.#complete(t.index);
  }

  /** A target is settled (fresh or rebuilt): release its dependents. */
  #complete(i: number): void {
    this.#state[i] = S.Done;
    const want = this.#o.want;
    for (const d of this.#g.targets[i]!.dependents) {
      if (!want[d] || this.#state[d] !== S.Waiting) continue;
      if (--this.#pending[d]! === 0) this.#evaluate.push(d);
    }
  }

  #start(t: GraphTarget): void {
    const i = t.index;
    this.#state[i] = S.Running;
    const tmp = join(this.#o.tmpRoot, `${process.pid}.${++this.#seq}`);
    const job: Job = {
      target: t,
      key: this.#keys[i]!,
      started: Date.now(),
      tmp,
      abort: new AbortController(),
      procs: new Set(),
      kills: new Set(),
      lines: [],
      aside: [],
      scratch: false,
    };
    this.#running.set(i, job);
    const isConsole = t.pool === 'console';
    this.#emit({type: 'start', target: t.name, description: t.config.description ?? t.name, reason: this.#reasons[i] ?? '', console: isConsole});
    // Temporaries are plain names in one folder (no folder per step: mkdir/rmdir cost).
    const tmpOutputs = t.outputs.map((o, k) => `${tmp}.${k}.${basename(o.path)}`);
    const work = async (): Promise<string> => {
      if (t.config.command !== undefined) return this.#runCommand(job, t.config.command, tmpOutputs, isConsole);
      await this.#runRule(job, tmpOutputs);
      return job.lines.join('\n');
    };
    work().then(
      (output) => this.#finish(job, tmpOutputs, output, undefined),
      // A failed command carries its output; a failed rule's is what it logged and ran.
      (err: unknown) => this.#finish(job, tmpOutputs, err instanceof StepFailure ? err.output : job.lines.join('\n'), err),
    );
  }

  #scratch(job: Job): string {
    const dir = `${job.tmp}.scratch`;
    if (!job.scratch) {
      mkdirSync(dir, {recursive: true});
      job.scratch = true;
    }
    return dir;
  }

  async #runCommand(job: Job, command: string, tmpOutputs: string[], isConsole: boolean): Promise<string> {
    const t = job.target;
    const root = this.#g.root;
    const vars: Record<string, string> = {};
    const all: string[] = [];
    for (const input of t.inputs) {
      const paths = input.items.map((item) => (item.kind === 'file' ? item.path : this.#g.targets[item.target]!.outputs[item.output]!.path));
      vars[`in_${input.name}`] = paths.join(' ');
      for (const p of paths) all.push(p);
    }
    vars['in'] = all.join(' ');
    const rels = tmpOutputs.map((p) => relative(root, p));
    t.outputs.forEach((o, k) => {
      vars[`out_${o.name}`] = rels[k]!;
      if (o.kind === 'dir') mkdirSync(tmpOutputs[k]!, {recursive: true});
    });
    vars['out'] = rels.join(' ');
    if (/\btmp\b/.test(command)) vars['tmp'] = relative(root, this.#scratch(job));
    let code: number | undefined;
    let output: string;
    const {ShellPool} = await loadShellPool();
    if (!isConsole && ShellPool.accepts(command)) {
      this.#shells ??= new ShellPool(root, {...this.#o.env, SOURCE_DATE_EPOCH: String(this.#g.sourceDateEpoch)});
      const r = await this.#shells.run(command, vars, (kill) => job.kills.add(kill));
      job.kills.clear();
      code = r.code;
      output = r.output.toString('utf8');
      if (this.#result.interrupted) throw new StepFailure('interrupted', output);
    } else {
      const env: NodeJS.ProcessEnv = {...this.#o.env, ...vars, SOURCE_DATE_EPOCH: String(this.#g.sourceDateEpoch)};
      const {StepProcess} = await loadProcess();
      const proc = new StepProcess('/bin/sh', ['-c', command], {cwd: root, env, console: isConsole});
      job.procs.add(proc);
      const r = await proc.result;
      job.procs.delete(proc);
      output = r.output.toString('utf8');
      if (r.spawnError !== undefined) throw new StepFailure(`could not start /bin/sh: ${r.spawnError}`, output);
      if (r.signal !== undefined) throw new StepFailure(`killed by ${r.signal}`, output);
      code = r.code;
    }
    if (code === 127) {
      const missing = /(?:^|\s)([^\s:]+): (?:command )?not found/m.exec(output)?.[1];
      throw new StepFailure(`command not found${missing === undefined ? '' : `: ${missing}`} (exit status 127)`, output);
    }
    if (code !== 0) throw new StepFailure(`command exited with status ${code}`, output);
    return output;
  }

  async #runRule(job: Job, tmpOutputs: string[]): Promise<void> {
    const t = job.target;
    const rule = t.config.rule!;
    const root = this.#g.root;
    const inputs: Record<string, string[]> = {};
    for (const input of t.inputs) {
      inputs[input.name] = input.items.map((item) => join(root, item.kind === 'file' ? item.path : this.#g.targets[item.target]!.outputs[item.output]!.path));
    }
    const outputs: Record<string, string> = {};
    t.outputs.forEach((o, k) => (outputs[o.name] = tmpOutputs[k]!));
    // The rule creates its outputs itself; the parent folder is there.
    const env = this.#o.env;
    const scratch = () => this.#scratch(job);
    const ctx: RuleContext = {
      target: t.name,
      root,
      inputs,
      params: t.config.params ?? {},
      outputs,
      get tmpDir() {
        return scratch();
      },
      sourceDateEpoch: this.#g.sourceDateEpoch,
      signal: job.abort.signal,
      log: (line) => job.lines.push(line),
      run: async (command: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> => {
        if (job.abort.signal.aborted) throw new PsyError('interrupted', `${command}: interrupted`);
        const {StepProcess} = await loadProcess();
        const proc = new StepProcess(command, args, {
          cwd: opts?.cwd ?? root,
          env: {...env, SOURCE_DATE_EPOCH: String(this.#g.sourceDateEpoch), ...opts?.env},
          ...(opts?.input === undefined ? {} : {input: opts.input}),
          captureStdout: opts?.captureStdout === true,
          captureStderr: opts?.captureStderr === true,
        });
        job.procs.add(proc);
        const r = await proc.result;
        job.procs.delete(proc);
        const text = r.output.toString('utf8');
        if (text.length > 0) job.lines.push(text.replace(/\n$/, ''));
        const failed = r.code !== 0 || r.signal !== undefined || r.spawnError !== undefined;
        if (failed && opts?.captureStderr === true && r.stderr.length > 0) job.lines.push(r.stderr.toString('utf8').replace(/\n$/, ''));
        const shown = [command, ...args].join(' ');
        if (r.spawnError === 'ENOENT') throw new PsyError('command-not-found', `command not found: ${command}`);
        if (r.spawnError !== undefined) throw new PsyError('command-failed', `${shown}: cannot start (${r.spawnError})`);
        if (r.signal !== undefined) throw new PsyError('command-failed', `${shown}: killed by ${r.signal}`);
        if (r.code !== 0) {
          const tail = r.stderr.toString('utf8').trim().split('\n').slice(-1)[0] ?? '';
          throw new PsyError('command-failed', `${shown}: exit status ${r.code}${tail === '' ? '' : ` (${tail})`}`);
        }
        return {stdout: r.stdout, stderr: r.stderr};
      },
    };
    await rule.run(ctx);
  }

  #finish(job: Job, tmpOutputs: string[], output: string, error: unknown): void {
    const t = job.target;
    if (t.pool !== undefined) {
      this.#poolRunning.set(t.pool, (this.#poolRunning.get(t.pool) ?? 1) - 1);
      const parked = this.#parked.get(t.pool);
      if (parked !== undefined && parked.length > 0) this.#ready.push(parked.shift()!);
    }
    if (error !== undefined || this.#result.interrupted) {
      this.#settle(job, tmpOutputs, output, error);
      return;
    }
    // rename(2) can wait on the filesystem's journal: the next step starts meanwhile
    this.#installing++;
    this.#pump();
    this.#moveIntoPlace(t, tmpOutputs, job).then(
      (failure) => {
        this.#installing--;
        this.#settle(job, tmpOutputs, output, undefined, failure ?? 'moved');
      },
      (err: unknown) => {
        this.#installing--;
        this.#settle(job, tmpOutputs, output, undefined, `could not move outputs into place: ${errorText(err)}`);
      },
    );
  }

  /** A step is over: record it (outputs moved into place) or report its failure, and go on. */
  #settle(job: Job, tmpOutputs: string[], output: string, error: unknown, moved?: string): void {
    const t = job.target;
    const i = t.index;
    const isConsole = t.pool === 'console';
    this.#running.delete(i);
    let failure: string | undefined;
    if (this.#result.interrupted) {
      failure = 'interrupted';
    } else if (error !== undefined) {
      failure = error instanceof StepFailure ? error.message : isPsyError(error) ? error.message : errorText(error);
    } else if (moved !== 'moved') {
      failure = moved;
    } else {
      try {
        failure = this.#record(t, job);
      } catch (err) {
        // A PsyError here is the state log's own one-line report (a full disk).
        failure = isPsyError(err) ? err.message : `could not record outputs: ${errorText(err)}`;
      }
    }
    try {
      if (failure !== undefined) for (const p of tmpOutputs) rmSync(p, {recursive: true, force: true});
      if (job.scratch) rmSync(`${job.tmp}.scratch`, {recursive: true, force: true});
      for (const p of job.aside) rmSync(p, {recursive: true, force: true});
    } catch {
      // Cleaned at the next start.
    }
    if (failure === undefined) {
      this.#result.ran.push(t.name);
      this.#emit({type: 'finish', target: t.name, durationMs: Date.now() - job.started, output, console: isConsole});
      this.#complete(i);
    } else if (this.#result.interrupted) {
      this.#state[i] = S.Failed;
    } else {
      this.#state[i] = S.Failed;
      this.#result.failed.push({target: t.name, message: failure});
      this.#emit({type: 'fail', target: t.name, action: describeAction(t), message: failure, output, console: isConsole});
      this.#skipDependents(i);
      const limit = this.#o.keepGoing;
      if (limit > 0 && this.#result.failed.length >= limit) this.#stopping = true;
    }
    this.#pump();
  }

  /** Move outputs into place. Returns a failure text. */
  async #moveIntoPlace(t: GraphTarget, tmpOutputs: string[], job: Job): Promise<string | undefined> {
    const root = this.#g.root;
    for (let k = 0; k < t.outputs.length; k++) {
      const o = t.outputs[k]!;
      const st = lstatSync(tmpOutputs[k]!, {throwIfNoEntry: false});
      const ok = o.kind === 'file' ? st?.isFile() === true : st?.isDirectory() === true;
      if (!ok) {
        return st === undefined
          ? `step did not produce its declared output "${o.name}" (${o.path})`
          : `output "${o.name}" (${o.path}) should be a ${o.kind === 'file' ? 'file' : 'directory'}`;
      }
    }
    for (let k = 0; k < t.outputs.length; k++) {
      const o = t.outputs[k]!;
      const final = join(root, o.path);
      const parent = dirname(final);
      if (!this.#madeDirs.has(parent)) {
        mkdirSync(parent, {recursive: true});
        this.#madeDirs.add(parent);
      }
      const old = lstatSync(final, {throwIfNoEntry: false});
      if (old !== undefined && (o.kind === 'dir' || old.isDirectory())) {
        // rename(2) cannot replace a non-empty directory: move the old one aside first.
        const aside = `${job.tmp}.old${k}`;
        renameSync(final, aside);
        job.aside.push(aside);
      }
      await rename(tmpOutputs[k]!, final);
      this.#o.files.invalidate(o.path);
    }
    return undefined;
  }

  /** Hash the outputs now in place and record the success. Returns a failure text. */
  #record(t: GraphTarget, job: Job): string | undefined {
    const hashes = t.outputs.map((o) => this.#o.files.output(o.path, o.kind));
    if (hashes.some((h) => h === undefined)) return 'an output vanished right after it was moved into place';
    this.#outHashes[t.index] = hashes as string[];
    const end = Date.now();
    this.#o.log.putTarget({
      name: t.name,
      key: job.key.key,
      action: job.key.action,
      params: job.key.params,
      tools: job.key.tools,
      inputs: job.key.inputs,
      outputs: t.outputs.map((o, k) => ({path: o.path, hash: hashes[k]!})),
      start: job.started,
      end,
    });
    this.#result.steps.push({target: t.name, start: job.started, end, durationMs: end - job.started});
    this.#buildLog ??= new BuildLogFile(this.#g.stateDir, (message) => this.#emit({type: 'warning', message}));
    this.#buildLog.append({target: t.name, key: job.key.key, start: job.started, end});
    return undefined;
  }

  #skipDependents(i: number): void {
    const failed = this.#g.targets[i]!.name;
    const stack = [...this.#g.targets[i]!.dependents];
    while (stack.length > 0) {
      const d = stack.pop()!;
      if (!this.#o.want[d] || this.#state[d] !== S.Waiting) continue;
      this.#state[d] = S.Failed;
      this.#result.skipped.push(this.#g.targets[d]!.name);
      this.#emit({type: 'skip', target: this.#g.targets[d]!.name, because: failed});
      stack.push(...this.#g.targets[d]!.dependents);
    }
  }
}

class StepFailure extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

/** A target with neither rule nor command: it names other targets and runs nothing. */
export function isGroup(t: GraphTarget): boolean {
  return t.config.rule === undefined && t.config.command === undefined;
}

export function describeAction(t: GraphTarget): string {
  if (t.config.command !== undefined) return t.config.command;
  if (t.config.rule !== undefined) return `rule ${t.config.rule.name}`;
  return 'group';
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const first = (err.stack ?? '').split('\n').slice(1, 2).join('').trim();
    return `${err.message}${isPsyError(err) || first === '' ? '' : ` (${first})`}`;
  }
  return String(err);
}
