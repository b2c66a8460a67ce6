import {parseArgs, type ParseArgsConfig} from 'node:util';
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
export function reportFailure(command: string, err: unknown, stderr: NodeJS.WritableStream): number {
  if (isPsyError(err)) {
    // Several problems found at once (a config's): a line each, each naming the command.
    for (const line of err.message.split('\n')) writeLine(stderr, `psy ${command}: ${line}`);
    return err.code === 'usage' ? 2 : 1;
  }
  writeLine(stderr, `psy ${command}: internal error, please report it:`);
  writeLine(stderr, err instanceof Error ? (err.stack ?? err.message) : String(err));
  return 70;
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
) {
  try {
    return parseArgs({args: argv, options, allowPositionals, strict: true});
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new PsyError('usage', `${msg} (see psy ${command} --help)`);
  }
}

/** `1 target`, `2 targets`: counts in messages agree with their noun. */
export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : nouns}`;
}

export function writeLine(stream: NodeJS.WritableStream, line = ''): void {
  stream.write(line + '\n');
}
