/**
 * Long-lived `/bin/sh` workers that run one-line shell commands for the engine.
 *
 * Why: starting a process from Node costs ~3 ms of main-thread time (a large process
 * forks), more than many build steps take. A small shell forks cheaply, so each worker
 * is handed one script per step (the step's variables exported, then its command), runs
 * it in a subshell, and answers with a sentinel carrying the exit status. The command
 * itself is an ordinary `sh` command; its stdout and stderr are captured together.
 *
 * The script goes through a file of the worker's, and only a wake-up line through the
 * pipe: the shell's `read` takes a pipe one byte per system call, a file is read whole.
 *
 * Each worker is its own process group, so an interrupt kills the worker and everything
 * the step started with one signal. Commands spanning several lines (and console-pool
 * steps) are started directly instead.
 */
import {spawn, type ChildProcess} from 'node:child_process';
import {mkdtempSync, rmSync, unlinkSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {shellQuote} from '../tools/shell-quote.js';

export interface ShellResult {
  readonly code: number;
  readonly output: Buffer;
}

interface Pending {
  readonly resolve: (r: ShellResult) => void;
}

class ShellWorker {
  readonly #child: ChildProcess;
  readonly #token: Buffer;
  #chunks: Buffer[] = [];
  #pending: Pending | undefined;
  #dead = false;
  readonly #onDeath: (w: ShellWorker) => void;

  readonly #script: string;

  constructor(cwd: string, env: NodeJS.ProcessEnv, script: string, onDeath: (w: ShellWorker) => void) {
    this.#onDeath = onDeath;
    this.#script = script;
    // Only has to be unlikely to appear in a step's output by accident.
    const token = `psy-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
    this.#token = Buffer.from(`\x1e${token} `, 'latin1');
    // Each wake-up line runs the step's script in a subshell fed from /dev/null.
    const loop = `while read -r psy_go; do (. ${shellQuote(script)}) </dev/null 2>&1; printf '\\036%s %d\\n' ${token} $?; done`;
    this.#child = spawn('/bin/sh', ['-c', loop], {cwd, env, detached: true, stdio: ['pipe', 'pipe', 'ignore']});
    this.#child.stdout!.on('data', (b: Buffer) => this.#data(b));
    this.#child.stdin!.on('error', () => {});
    this.#child.on('close', () => {
      this.#dead = true;
      const p = this.#pending;
      this.#pending = undefined;
      p?.resolve({code: 137, output: Buffer.concat(this.#chunks)});
      this.#onDeath(this);
    });
  }

  get busy(): boolean {
    return this.#pending !== undefined;
  }

  get dead(): boolean {
    return this.#dead;
  }

  run(script: string): Promise<ShellResult> {
    // A new file each time: rewriting one in place makes ext4 flush it (auto_da_alloc), ~1 ms.
    try {
      unlinkSync(this.#script);
    } catch {
      // the first step of this worker
    }
    writeFileSync(this.#script, script);
    return new Promise((resolve) => {
      this.#pending = {resolve};
      this.#chunks = [];
      this.#child.stdin!.write('\n');
    });
  }

  #data(b: Buffer): void {
    this.#chunks.push(b);
    if (this.#pending === undefined) return;
    // The sentinel ends with a newline; look only when this chunk has one.
    if (b.indexOf(10) < 0) return;
    const all = this.#chunks.length === 1 ? b : Buffer.concat(this.#chunks);
    const at = all.lastIndexOf(this.#token);
    if (at < 0) {
      this.#chunks = [all];
      return;
    }
    const end = all.indexOf(10, at);
    if (end < 0) {
      this.#chunks = [all];
      return;
    }
    const code = Number.parseInt(all.toString('latin1', at + this.#token.length, end), 10);
    const output = all.subarray(0, at);
    const p = this.#pending;
    this.#pending = undefined;
    this.#chunks = [];
    p.resolve({code, output});
  }

  kill(sig: NodeJS.Signals): void {
    if (this.#dead || this.#child.pid === undefined) return;
    try {
      process.kill(-this.#child.pid, sig);
    } catch {
      // Gone already.
    }
  }

  close(): void {
    // psy waits for the shell to exit (it does at once, on end of input) rather than
    // leaving it behind: the steps' CPU time is then charged to psy, as make's and ninja's is.
    this.#child.stdin!.end();
  }
}

export class ShellPool {
  readonly #cwd: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #idle: ShellWorker[] = [];
  readonly #all = new Set<ShellWorker>();

  #dir: string | undefined;
  #made = 0;

  constructor(cwd: string, env: NodeJS.ProcessEnv) {
    this.#cwd = cwd;
    this.#env = env;
  }

  /** Whether a command can go through a worker (one line, no NUL). */
  static accepts(command: string): boolean {
    return !/[\n\r\0]/.test(command);
  }

  /**
   * Run `command` with `vars` exported. `onStart` receives a kill function that
   * terminates the step (the worker and the step's processes).
   */
  async run(command: string, vars: Readonly<Record<string, string>>, onStart: (kill: () => void) => void): Promise<ShellResult> {
    let w = this.#idle.pop();
    while (w !== undefined && w.dead) w = this.#idle.pop();
    if (w === undefined) {
      this.#dir ??= mkdtempSync(join(tmpdir(), 'psy-shells-'));
      w = new ShellWorker(this.#cwd, this.#env, join(this.#dir, `step-${++this.#made}.sh`), (dead) => this.#all.delete(dead));
      this.#all.add(w);
    }
    const worker = w;
    let exports = '';
    for (const [k, v] of Object.entries(vars)) exports += `${k}=${shellQuote(v)}; export ${k}; `;
    onStart(() => {
      worker.kill('SIGTERM');
      setTimeout(() => worker.kill('SIGKILL'), 2000).unref();
    });
    const r = await worker.run(`${exports}eval ${shellQuote(command)}\n`);
    if (!worker.dead) this.#idle.push(worker);
    // The shell names the worker's eval in its own errors ("/bin/sh: 1: eval: x: not
    // found"); without it they read as a directly started step's do. (An exec of a new
    // shell per step would say the same, at the cost of a process image per step.)
    return r.output.includes(EVAL_MARK) ? {code: r.code, output: Buffer.from(r.output.toString('latin1').replace(EVAL_ERROR, '$1'), 'latin1')} : r;
  }

  close(): void {
    for (const w of this.#all) w.close();
    this.#all.clear();
    this.#idle.length = 0;
    // a worker still reading its script keeps the open file; the name can go
    if (this.#dir !== undefined) rmSync(this.#dir, {recursive: true, force: true});
    this.#dir = undefined;
  }

  killAll(): void {
    for (const w of this.#all) w.kill('SIGKILL');
  }
}

const EVAL_MARK = Buffer.from(': eval: ');
const EVAL_ERROR = /^(\/bin\/sh: \d+: )eval: /gm;
