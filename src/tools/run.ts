import {createRequire} from 'node:module';
import {pathToFileURL} from 'node:url';
import {PsyError} from '../errors.js';
import type {RunOptions, RunResult} from '../engine/rule.js';
import {Launcher} from './launcher.js';
import {debianPackageOf} from './table.js';

/**
 * The one way psy runs an external program to completion (execa). Rules pass `ctx.run`
 * (killed with the build, output in the step log); libraries, neuralupgrade and tests
 * take `runTool`, which behaves the same way on its own. The engine's process-group
 * runner (src/engine/process.ts) and the QEMU spawners stay apart: they hold long-lived
 * children.
 */
export type ToolRunner = (command: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

export interface ToolRunOptions extends RunOptions {
  /** Aborting kills the program (SIGTERM). */
  readonly signal?: AbortSignal;
  /** Receives stdout as it arrives instead of collecting it (stdout comes back empty). */
  readonly onStdout?: (chunk: Buffer) => void;
}

/** How a program ended: for callers that judge a non-zero exit themselves. */
export interface ToolExit extends RunResult {
  /** Exit status; -1 when killed by a signal. */
  readonly code: number;
  readonly signal?: string;
}

export function missingToolError(command: string): PsyError {
  const pkg = debianPackageOf(command);
  const hint = pkg ? `install the Debian package ${pkg} (apt-get install ${pkg})` : 'install it';
  return new PsyError('missing-tool', `${command} not found on PATH: ${hint}`);
}

/** The last non-empty lines of a tool's output, joined to fit a one-line error. */
export function tailOf(text: string, lines = 3): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(-lines)
    .join(' | ');
}

let launcher: Launcher | undefined;
let launcherUsers = 0;

/**
 * Runs `fn` with every program it starts through runTool/runToolExit started by a small
 * shell (src/tools/launcher.ts), made now while this process is small: for work that
 * holds much memory while it starts programs (neuralupgrade's apply).
 */
export async function withLauncher<T>(fn: () => Promise<T>): Promise<T> {
  try {
    launcher ??= new Launcher();
  } catch {
    // no private folder for its files: programs are started directly
    return fn();
  }
  launcherUsers++;
  try {
    return await fn();
  } finally {
    if (--launcherUsers === 0) {
      launcher?.close();
      launcher = undefined;
    }
  }
}

/** Whether the launcher can take the request: it reads one line per program. */
function oneLine(command: string, args: readonly string[], options: ToolRunOptions): boolean {
  const env = Object.entries(options.env ?? {});
  return (
    env.every(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) && ![command, ...args, options.cwd ?? '', ...env.map(([, v]) => v)].some((s) => s.includes('\n'))
  );
}

const asBuffer = (u: unknown): Buffer => (u instanceof Uint8Array ? Buffer.from(u.buffer, u.byteOffset, u.byteLength) : Buffer.alloc(0));

/**
 * Runs a program and reports how it ended, whatever its exit status. Only a program
 * that cannot be started is an error: a missing one names its Debian package.
 */
export async function runToolExit(command: string, args: readonly string[], options: ToolRunOptions = {}): Promise<ToolExit> {
  if (launcher !== undefined && options.signal === undefined && options.onStdout === undefined && oneLine(command, args, options)) {
    const r = await launcher.run({command, args, cwd: options.cwd, env: options.env, input: options.input});
    if (r !== undefined) {
      if (r.code === undefined) throw missingToolError(command);
      return {code: r.code, ...(r.signal !== undefined ? {signal: r.signal} : {}), stdout: r.stdout, stderr: r.stderr};
    }
  }
  // Loaded on first use (a no-op build, which runs nothing, never pays for execa), and
  // from psy's own install: rules are compiled into the project's cache, where a bare
  // import would look for node_modules in the project instead.
  const {execa} = (await import(pathToFileURL(createRequire(import.meta.url).resolve('execa')).href)) as typeof import('execa');
  const sub = execa(command, args, {
    cwd: options.cwd,
    env: options.env,
    encoding: 'buffer',
    reject: false,
    stripFinalNewline: false,
    maxBuffer: 1 << 30,
    ...(options.input !== undefined ? {input: options.input} : {stdin: 'ignore' as const}),
    ...(options.signal !== undefined ? {cancelSignal: options.signal} : {}),
    ...(options.onStdout !== undefined ? {buffer: {stdout: false}} : {}),
  });
  const onStdout = options.onStdout;
  if (onStdout !== undefined) sub.stdout.on('data', (b: Buffer) => onStdout(b));
  const r = await sub;
  if (r.exitCode === undefined && r.signal === undefined) {
    if (r.code === 'ENOENT') throw missingToolError(command);
    throw new PsyError('tool-failed', `${command}: ${r.cause instanceof Error ? r.cause.message : r.shortMessage}`);
  }
  return {code: r.exitCode ?? -1, ...(r.signal !== undefined ? {signal: r.signal} : {}), stdout: asBuffer(r.stdout), stderr: asBuffer(r.stderr)};
}

/**
 * Runs a program, collecting stdout and stderr. A missing program and a non-zero exit
 * become one-line PsyErrors naming the program (and for a missing one, its package).
 */
export async function runTool(command: string, args: readonly string[], options: ToolRunOptions = {}): Promise<RunResult> {
  const r = await runToolExit(command, args, options);
  if (r.code === 0) return {stdout: r.stdout, stderr: r.stderr};
  const why = r.signal !== undefined ? `killed by ${r.signal}` : `exit ${r.code}`;
  const detail = tailOf(r.stderr.toString() || r.stdout.toString());
  throw new PsyError('tool-failed', `${command} failed (${why})${detail ? ': ' + detail : ''}`);
}
