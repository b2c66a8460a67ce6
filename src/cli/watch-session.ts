/**
 * `psy build --watch`: the terminal side of watch mode. Prints what is watched and what
 * triggered each build, shows every build exactly as `psy build` does (a fresh status
 * printer per build), runs the `--then` command after successful builds, and turns
 * Ctrl-C into a clean stop (running steps killed, exit status 130).
 */
import {spawn, type ChildProcess} from 'node:child_process';
import {relative} from 'node:path';
import type {BuildResult} from '../engine/build.js';
import {Watcher, type Trigger, type WatchEvent} from '../engine/watch.js';
import type {WatchSummary} from '../engine/watch-files.js';
import {plural, writeLine, type CommandIo} from './command.js';
import {StatusPrinter} from './status.js';

export interface WatchSessionOptions {
  readonly io: CommandIo;
  readonly targets: readonly string[];
  readonly configPath?: string;
  readonly jobs?: number;
  readonly keepGoing?: number;
  readonly verbose: boolean;
  /** Shell command run after each successful build that changed something. */
  readonly then?: string;
}

const PREFIX = 'psy watch:';

export async function runWatchSession(options: WatchSessionOptions): Promise<number> {
  const {io} = options;
  const out = io.stdout as NodeJS.WriteStream;
  const tty = out.isTTY === true && io.env['TERM'] !== 'dumb';
  let printer: StatusPrinter | undefined;
  const say = (text: string) => {
    // Leave a terminal's status line before printing (it is redrawn by the next step event).
    if (tty) printer?.close();
    writeLine(io.stdout, `${PREFIX} ${text}`);
  };
  const then = options.then === undefined ? undefined : new ThenCommand(options.then, io, say);
  let thenStarted = false;
  let root = io.cwd;
  let exitCode = 130;

  const onEvent = (e: WatchEvent): void => {
    switch (e.type) {
      case 'watching':
        say(`watching ${describeWatch(e.summary)} for ${e.targets.length > 0 ? e.targets.join(', ') : 'the default targets'}`);
        return;
      case 'build-start':
        if (e.triggers.length === 0) say(`build ${e.build}: initial build`);
        else say(`build ${e.build} triggered by ${describeTriggers(e.triggers)}`);
        for (const t of e.triggers) {
          if (t.kind === 'deleted' && !t.config) say(`input ${t.path} was deleted`);
        }
        if (e.triggers.some((t) => t.config)) say('config changed: reloading the graph');
        return;
      case 'build-done': {
        printer?.close();
        printer = undefined;
        root = e.result.root;
        printBuildSummary(e.result, io);
        const secs = (e.durationMs / 1000).toFixed(2);
        const r = e.result;
        if (r.interrupted) say(`build ${e.build} interrupted`);
        else if (!r.ok) say(`build ${e.build} failed in ${secs}s (${r.failed.map((f) => f.target).join(', ')})`);
        else say(`build ${e.build} succeeded in ${secs}s (${r.ran.length === 0 ? 'nothing to do' : `ran ${r.ran.join(', ')}`})`);
        if (then !== undefined && r.ok && (r.ran.length > 0 || !thenStarted)) {
          thenStarted = true;
          then.restart(root).catch((err: unknown) => say(`--then: ${err instanceof Error ? err.message : String(err)}`));
        }
        return;
      }
      case 'build-error':
        printer?.close();
        printer = undefined;
        writeLine(io.stderr, `psy build: ${e.message}`);
        if (e.build === 1 && e.code === 'no-config') {
          // Nothing to watch: a wrong folder or --config path, not an edit in progress.
          exitCode = 1;
          void watcher.stop('no-config');
          return;
        }
        say(
          `build ${e.build} failed: ${e.internal ? 'internal error (above)' : e.message}${e.retryInMs === undefined ? '' : ` (trying again in ${e.retryInMs / 1000} s)`}`,
        );
        return;
      case 'idle':
        say('waiting for changes (Ctrl-C to stop)');
        return;
      case 'error':
        writeLine(io.stderr, `${PREFIX} ${e.message}`);
        return;
      default: {
        const never: never = e;
        throw new Error(`unknown watch event ${String(never)}`);
      }
    }
  };

  const watcher = new Watcher({
    cwd: io.cwd,
    ...(options.configPath === undefined ? {} : {configPath: options.configPath}),
    targets: options.targets,
    ...(options.jobs === undefined ? {} : {jobs: options.jobs}),
    ...(options.keepGoing === undefined ? {} : {keepGoing: options.keepGoing}),
    env: io.env,
    onEvent,
    buildLogger: () => {
      printer = new StatusPrinter({
        out,
        tty,
        verbose: options.verbose,
        ...(out.columns === undefined ? {} : {columns: out.columns}),
      });
      return printer;
    },
  });

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    // A second Ctrl-C while steps are being stopped: leave at once.
    if (signals > 1) process.exit(130);
    void watcher.stop(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    await watcher.run();
    printer?.close();
    await then?.stop();
    if (exitCode === 130) say('stopped');
    return exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}

/** The same closing line a plain `psy build` prints. */
function printBuildSummary(result: BuildResult, io: CommandIo): void {
  if (result.interrupted) return;
  if (result.failed.length > 0) {
    const names = result.failed.map((f) => f.target).join(', ');
    writeLine(io.stderr, `psy build: ${result.failed.length} target${result.failed.length === 1 ? '' : 's'} failed: ${names}`);
  } else if (result.ran.length === 0) {
    writeLine(io.stdout, `psy: no work to do (${plural(result.upToDate.length, 'target')} up to date)`);
  }
}

function describeWatch(s: WatchSummary): string {
  const parts = [plural(s.files, 'input file')];
  if (s.globs.length > 0) parts.push(`${plural(s.globs.length, 'glob')} (${s.globs.join(', ')})`);
  parts.push(plural(s.configFiles, 'config file'));
  return `${parts.join(', ')} in ${plural(s.folders, 'folder')}`;
}

function describeTriggers(triggers: readonly Trigger[]): string {
  const shown = triggers.slice(0, 3).map((t) => `${t.path} (${t.kind})`);
  const more = triggers.length > 3 ? ` and ${triggers.length - 3} more` : '';
  return shown.join(', ') + more;
}

/**
 * The `--then` command: started with `sh -c` in its own process group after a
 * successful build; if it still runs when the next successful build is done (a booted
 * VM, a server), it is stopped first, so at most one runs at a time.
 */
class ThenCommand {
  readonly #command: string;
  readonly #io: CommandIo;
  readonly #say: (text: string) => void;
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #queue: Promise<void> = Promise.resolve();

  constructor(command: string, io: CommandIo, say: (text: string) => void) {
    this.#command = command;
    this.#io = io;
    this.#say = say;
  }

  restart(root: string): Promise<void> {
    this.#queue = this.#queue.then(async () => {
      await this.stop();
      this.#start(root);
    });
    return this.#queue;
  }

  #start(root: string): void {
    const where = relative(root, this.#io.cwd);
    this.#say(`then: ${this.#command}${where === '' ? '' : ` (in ${where})`}`);
    const child = spawn('sh', ['-c', this.#command], {
      cwd: this.#io.cwd,
      env: this.#io.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    child.stdout?.on('data', (b: Buffer) => this.#io.stdout.write(b));
    child.stderr?.on('data', (b: Buffer) => this.#io.stderr.write(b));
    this.#exited = new Promise<void>((resolve) => {
      child.on('error', (err) => {
        this.#say(`then: could not start: ${err.message}`);
        resolve();
      });
      child.on('close', (code, signal) => {
        if (this.#child === child) {
          this.#child = undefined;
          this.#say(`then: exited with ${signal === null ? `status ${code ?? '?'}` : `signal ${signal}`}`);
        }
        resolve();
      });
    });
  }

  /** Stop a running then-command and its children (SIGTERM, SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (child === undefined || exited === undefined || child.pid === undefined) return;
    this.#child = undefined;
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // Already gone.
      }
    };
    kill('SIGTERM');
    const timer = setTimeout(() => kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}
