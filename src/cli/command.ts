import {statSync, writeSync} from 'node:fs';
import {createRequire} from 'node:module';
import {resolve} from 'node:path';
import {parseArgs, type ParseArgsConfig} from 'node:util';
import {didYouMean, plural} from '../wording.js';

export {plural};
import {isPsyError, PsyError} from '../errors.js';

/** What a command may touch of the outside world; injected so tests can capture it. */
export interface CommandIo {
  readonly stdout: NodeJS.WriteStream | NodeJS.WritableStream;
  readonly stderr: NodeJS.WriteStream | NodeJS.WritableStream;
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
}

/** The real process's streams, folder and environment, with any given parts instead. */
export function processIo(io?: Partial<CommandIo>): CommandIo {
  return {
    stdout: io?.stdout ?? process.stdout,
    stderr: io?.stderr ?? process.stderr,
    cwd: io?.cwd ?? process.cwd(),
    env: io?.env ?? process.env,
  };
}

/**
 * Report what a command threw and give its exit status: a PsyError as one line, anything
 * else as an internal error with its stack.
 */
export function reportFailure(command: string | undefined, err: unknown, stderr: NodeJS.WritableStream): number {
  const who = command === undefined ? 'psy' : `psy ${command}`;
  if (isPsyError(err)) {
    // Several problems found at once (a config's): a line each, each naming the command.
    for (const line of err.message.split('\n')) writeLine(stderr, `${who}: ${line}`);
    return err.code === 'usage' ? 2 : 1;
  }
  writeLine(stderr, `${who}: internal error, please report it:`);
  writeLine(stderr, err instanceof Error ? (err.stack ?? err.message) : String(err));
  return 70;
}

/**
 * The options before the command name: `-C DIR` / `--directory DIR` (repeatable, each
 * relative to the one before) runs psy as if started in DIR, as make, ninja and git do.
 */
export function globalOptions(argv: readonly string[], cwd: string): {readonly argv: string[]; readonly cwd: string} {
  let i = 0;
  let dir = cwd;
  for (;;) {
    const a = argv[i];
    let value: string | undefined;
    if (a === '-C' || a === '--directory') {
      value = argv[i + 1];
      if (value === undefined) throw new PsyError('usage', `option ${a} needs a directory (see psy --help)`);
      i += 2;
    } else if (a !== undefined && a.startsWith('-C') && a.length > 2) {
      value = a.slice(2);
      i++;
    } else if (a !== undefined && a.startsWith('--directory=')) {
      value = a.slice('--directory='.length);
      i++;
    } else {
      break;
    }
    dir = resolve(dir, value);
    if (statSync(dir, {throwIfNoEntry: false})?.isDirectory() !== true) throw new PsyError('usage', `-C ${value}: no such directory`);
  }
  return {argv: argv.slice(i), cwd: dir};
}

export interface Command {
  readonly name: string;
  /** One line for `psy --help`. */
  readonly summary: string;
  /** Full `--help` text. */
  readonly help: string;
  /** Returns the exit status. Throws PsyError for user mistakes. */
  run(argv: string[], io: CommandIo): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * node:util parseArgs with its errors turned into one-line PsyErrors that name the
 * command, so `psy build --bogus` says what is wrong instead of printing a stack.
 */
export function parseCommandArgs<O extends Options>(
  command: string,
  argv: string[],
  options: O,
  allowPositionals = true,
): ReturnType<typeof parseArgs<{args: string[]; options: O; allowPositionals: boolean; strict: true}>> {
  try {
    return parseArgs({args: argv, options, allowPositionals, strict: true});
  } catch (err) {
    const known = Object.entries(options).flatMap(([long, o]) => [`--${long}`, ...(o.short === undefined ? [] : [`-${o.short}`])]);
    // `command` may be a whole program's (`neuralupgrade status`): psy's own get `psy `.
    const program = command.includes(' ') ? command : `psy ${command}`;
    throw new PsyError('usage', `${usageMessage(err, known)} (see ${program} --help)`);
  }
}

/** node:util's parseArgs message as one short line naming the option. */
function usageMessage(err: unknown, known: readonly string[]): string {
  const code = (err as {code?: unknown}).code;
  const msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  let m: RegExpExecArray | null;
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && (m = /^Unknown option '([^']+)'/.exec(msg))) {
    const option = m[1]!;
    return `unknown option ${option}${
      option.startsWith('--')
        ? didYouMean(
            option,
            known.filter((k) => k.startsWith('--')),
          )
        : ''
    }`;
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    if ((m = /^Option '(?:-\w, )?(--[^\s']+)[^']*' argument missing/.exec(msg))) return `option ${m[1]!} needs a value`;
    if ((m = /^Option '(?:-\w, )?(--[^\s']+)' does not take an argument/.exec(msg))) return `option ${m[1]!} takes no value`;
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' && (m = /^Unexpected argument '([^']*)'/.exec(msg))) {
    return `unexpected argument '${m[1]!}': this command takes none`;
  }
  return msg;
}

/** Descriptors whose reader has gone (EPIPE): what is left to say is dropped. */
const readerGone = new Set<number>();
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * One line to a stream. The process's own stdout and stderr are written straight to
 * their descriptors, whole, before this returns: the same under Node and under Bun
 * (whose stream write throws EPIPE and EAGAIN at the caller). A reader that stopped
 * reading (`| head -c1`) ends the output quietly, as with any Unix filter; a full
 * non-blocking pipe is waited for.
 */
export function writeLine(stream: NodeJS.WritableStream, line = ''): void {
  // A stand-in first: comparing with process.stdout would create the stream.
  const fd = stream instanceof StdioOut ? stream.fd : stream === process.stdout ? 1 : stream === process.stderr ? 2 : undefined;
  if (fd === undefined) {
    stream.write(line + '\n');
    return;
  }
  writeFully(fd, Buffer.from(line + '\n'));
}

function writeFully(fd: number, data: Uint8Array): void {
  if (readerGone.has(fd)) return;
  for (let done = 0; done < data.length;) {
    try {
      done += writeSync(fd, data, done, data.length - done);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(pause, 0, 0, 2);
      else if (code === 'EPIPE') {
        readerGone.add(fd);
        return;
      } else throw err;
    }
  }
}

/**
 * The process's stdout or stderr without Node's stream for it: creating one costs a few
 * milliseconds, a good part of a no-op build's own time. Writes go straight to the
 * descriptor, as writeLine's do; only asking a terminal's width creates the stream.
 */
class StdioOut {
  constructor(readonly fd: 1 | 2) {}

  #stream(): NodeJS.WriteStream {
    return this.fd === 1 ? process.stdout : process.stderr;
  }

  get isTTY(): boolean {
    return isTerminal(this.fd);
  }

  get columns(): number | undefined {
    return isTerminal(this.fd) ? this.#stream().columns : undefined;
  }

  write(chunk: string | Uint8Array): boolean {
    writeFully(this.fd, typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    return true;
  }
}

let tty: typeof import('node:tty') | undefined;

/** isatty(3), loading node:tty (and node:net with it, milliseconds) only when asked. */
function isTerminal(fd: number): boolean {
  tty ??= createRequire(import.meta.url)('node:tty') as typeof import('node:tty');
  return tty.isatty(fd);
}

/**
 * processIo with stand-ins for stdout and stderr (see StdioOut), for a command that only
 * writes lines to them: `psy build` (its no-op fast path and its build from the bundle).
 */
export function lineIo(): CommandIo {
  // Only write, isTTY and columns are used of them (writeLine, the status printer).
  const out = (fd: 1 | 2) => new StdioOut(fd) as unknown as NodeJS.WritableStream;
  return {stdout: out(1), stderr: out(2), cwd: process.cwd(), env: process.env};
}
