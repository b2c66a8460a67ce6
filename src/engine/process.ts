/**
 * Child processes of build steps. Each runs in its own process group (session) so that
 * an interrupt kills everything it started, not just the shell. Output (stdout and
 * stderr interleaved) is buffered and handed back whole.
 */
import {spawn, type ChildProcess} from 'node:child_process';

export interface ProcessResult {
  /** Exit status, or undefined when killed by a signal. */
  readonly code: number | undefined;
  readonly signal: NodeJS.Signals | undefined;
  readonly output: Buffer;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
  /** Set when the program could not be started at all (ENOENT, EACCES). */
  readonly spawnError: string | undefined;
}

export interface SpawnOptions {
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
  /** Give the step the terminal (console pool): inherit stdio, stay in our group. */
  readonly console?: boolean;
  readonly input?: string | Uint8Array;
  /** Keep stdout apart instead of interleaving it into `output`. */
  readonly captureStdout?: boolean;
  /** Keep stderr apart too (it stays in `stderr`, not in `output`). */
  readonly captureStderr?: boolean;
}

export class StepProcess {
  readonly result: Promise<ProcessResult>;
  readonly #child: ChildProcess;
  readonly #group: boolean;
  #exited = false;
  #killTimer: NodeJS.Timeout | undefined;

  constructor(file: string, args: readonly string[], options: SpawnOptions) {
    const console = options.console === true;
    this.#group = !console;
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      detached: !console,
      stdio: console ? 'inherit' : [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    this.#child = child;
    const chunks: Buffer[] = [];
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => (options.captureStdout === true ? out.push(b) : chunks.push(b)));
    child.stderr?.on('data', (b: Buffer) => {
      if (options.captureStderr !== true) chunks.push(b);
      err.push(b);
    });
    if (options.input !== undefined && child.stdin !== null) {
      child.stdin.on('error', () => {});
      child.stdin.end(options.input);
    }
    this.result = new Promise((resolve) => {
      let spawnError: string | undefined;
      child.on('error', (e: NodeJS.ErrnoException) => {
        spawnError = e.code ?? e.message;
        if (child.pid === undefined) finish(undefined, undefined);
      });
      const finish = (code: number | null | undefined, signal: NodeJS.Signals | null | undefined) => {
        if (this.#exited) return;
        this.#exited = true;
        if (this.#killTimer !== undefined) clearTimeout(this.#killTimer);
        resolve({
          code: code ?? undefined,
          signal: signal ?? undefined,
          output: Buffer.concat(chunks),
          stdout: Buffer.concat(out),
          stderr: Buffer.concat(err),
          spawnError,
        });
      };
      child.on('close', finish);
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** SIGTERM the whole group, then SIGKILL it if it is still there after a grace period. */
  kill(graceMs = 2000): void {
    if (this.#exited || this.#child.pid === undefined) return;
    this.#signal('SIGTERM');
    this.#killTimer ??= setTimeout(() => this.#signal('SIGKILL'), graceMs);
    this.#killTimer.unref();
  }

  #signal(sig: NodeJS.Signals): void {
    const pid = this.#child.pid;
    if (pid === undefined || this.#exited) return;
    try {
      if (this.#group) process.kill(-pid, sig);
      else this.#child.kill(sig);
    } catch {
      // Already gone.
    }
  }
}
