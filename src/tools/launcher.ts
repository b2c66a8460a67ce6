import {spawn, type ChildProcess} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {constants, tmpdir} from 'node:os';
import {join} from 'node:path';
import {shellQuote} from './shell-quote.js';

/** One program to run, as runToolExit takes it. */
export interface LaunchRequest {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd?: string | undefined;
  readonly env?: Readonly<Record<string, string>> | undefined;
  readonly input?: string | Uint8Array | undefined;
}

export interface LaunchResult {
  /** undefined: the program is not on PATH. */
  readonly code: number | undefined;
  readonly signal?: string;
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

const SCRIPT = `while IFS= read -r psy_line; do eval "$psy_line"; done`;

/**
 * A small `/bin/sh` that starts programs on behalf of a process holding much memory.
 *
 * Why: Node starts a child with fork(2), whose cost grows with the parent's memory (its
 * page tables are copied): with an update's 100 MiB in memory, each start costs 10-20 ms
 * instead of 3-8 ms, and an apply starts about ten programs (mcopy, mke2fs, debugfs).
 * The shell is started while the process is still small and forks cheaply ever after.
 *
 * Each request is one line: the program, its arguments, environment and folder quoted for
 * the shell, stdin, stdout and stderr redirected to files in a private folder; the shell
 * answers with the exit status (or `missing` when the program is not on PATH). Requests
 * run one after another, in the order they were made.
 */
export class Launcher {
  readonly #child: ChildProcess;
  readonly #dir: string;
  readonly #waiting: Array<(status: string | undefined) => void> = [];
  #buffered = '';
  #seq = 0;
  #closed = false;

  constructor() {
    this.#dir = mkdtempSync(join(tmpdir(), 'psy-launch-'));
    this.#child = spawn('/bin/sh', ['-c', SCRIPT], {stdio: ['pipe', 'pipe', 'ignore']});
    this.#child.stdin!.on('error', () => {});
    this.#child.stdout!.setEncoding('latin1');
    this.#child.stdout!.on('data', (s: string) => {
      this.#buffered += s;
      for (let nl = this.#buffered.indexOf('\n'); nl >= 0; nl = this.#buffered.indexOf('\n')) {
        const line = this.#buffered.slice(0, nl);
        this.#buffered = this.#buffered.slice(nl + 1);
        this.#waiting.shift()?.(line);
      }
    });
    const gone = () => {
      this.#closed = true;
      for (const w of this.#waiting.splice(0)) w(undefined);
    };
    // a shell that cannot start or dies: its requests are answered undefined, and the
    // caller starts the programs itself
    this.#child.on('error', gone);
    this.#child.on('close', gone);
  }

  /** Runs one program to completion; undefined when the shell itself is gone. */
  async run(r: LaunchRequest): Promise<LaunchResult | undefined> {
    if (this.#closed) return undefined;
    const n = ++this.#seq;
    const file = (what: string) => join(this.#dir, `${n}.${what}`);
    let stdin = '/dev/null';
    if (r.input !== undefined) {
      stdin = file('in');
      writeFileSync(stdin, r.input);
    }
    const env = Object.entries(r.env ?? {})
      .map(([k, v]) => `export ${k}=${shellQuote(v)}; `)
      .join('');
    const program = [r.command, ...r.args].map(shellQuote).join(' ');
    const cd = r.cwd !== undefined ? `cd ${shellQuote(r.cwd)} || exit 126; ` : '';
    const line =
      `if command -v ${shellQuote(r.command)} >/dev/null 2>&1; then ` +
      `(${cd}${env}exec ${program}) <${shellQuote(stdin)} >${shellQuote(file('out'))} 2>${shellQuote(file('err'))}; printf '%s\\n' "$?"; ` +
      `else printf 'missing\\n'; fi`;
    const status = await new Promise<string | undefined>((resolve) => {
      this.#waiting.push(resolve);
      this.#child.stdin!.write(line + '\n');
    });
    try {
      if (status === undefined) return undefined;
      if (status === 'missing') return {code: undefined, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0)};
      const stdout = readFileSync(file('out'));
      const stderr = readFileSync(file('err'));
      const code = Number(status);
      // the shell reports a program killed by signal N as 128 + N
      const signal = code > 128 ? Object.entries(constants.signals).find(([, v]) => v === code - 128)?.[0] : undefined;
      return signal !== undefined ? {code: -1, signal, stdout, stderr} : {code, stdout, stderr};
    } finally {
      for (const what of ['in', 'out', 'err']) rmSync(file(what), {force: true});
    }
  }

  close(): void {
    this.#child.stdin!.end();
    rmSync(this.#dir, {recursive: true, force: true});
  }
}
