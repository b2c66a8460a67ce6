import {didYouMean} from '../wording.js';
import type {FastBuild} from './build-fast.js';
import {globalOptions, processIo, reportFailure, writeLine, type Command, type CommandIo} from './command.js';

/**
 * Commands are loaded on demand so that `psy build` on a no-op pays only for the modules
 * it uses. Each entry lives in src/cli/commands/<name>.ts and exports `command`.
 */
const commands: Record<string, () => Promise<Command>> = {};

export function registerCommand(name: string, load: () => Promise<Command>): void {
  commands[name] = load;
}

/** The exit statuses every command shares; a help text that has others says them itself. */
const EXIT_STATUS = 'Exit status: 0 success, 1 failure, 2 usage error (unknown option, missing argument).';

function topHelp(summaries: Array<[string, string]>): string {
  const width = Math.max(0, ...summaries.map(([n]) => n.length));
  return [
    'psy: build, sign, publish and update psyopsOS',
    '',
    'Usage: psy [-C DIR] <command> [options]',
    '',
    'Commands:',
    ...summaries.map(([n, s]) => `  ${n.padEnd(width)}  ${s}`),
    '',
    'Options:',
    '  -C, --directory DIR  run as if psy was started in DIR (repeatable; each is',
    '                       relative to the one before)',
    '',
    'Run `psy <command> --help` for the options of one command.',
    '',
    EXIT_STATUS,
  ].join('\n');
}

/**
 * Run `psy ARGV`. `fast` is what the no-op fast path (build-fast.ts) already found for
 * these very arguments, when the caller ran it first (bin/psy.js does).
 */
export async function main(argv: string[], io?: Partial<CommandIo>, fast?: FastBuild): Promise<number> {
  const given = processIo(io);
  let global: ReturnType<typeof globalOptions>;
  try {
    global = globalOptions(argv, given.cwd);
  } catch (err) {
    return reportFailure(undefined, err, given.stderr);
  }
  const fullIo: CommandIo = {...given, cwd: global.cwd};
  await import('./commands/index.js');
  const [name, ...rest] = global.argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const loaded = await Promise.all(
      Object.keys(commands)
        .sort()
        .map(async (n) => [n, (await commands[n]!()).summary] as [string, string]),
    );
    writeLine(name === undefined ? fullIo.stderr : fullIo.stdout, topHelp(loaded));
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    writeLine(fullIo.stdout, 'psy 0.1.0');
    return 0;
  }
  const load = commands[name];
  if (load === undefined) {
    const hint = didYouMean(name, Object.keys(commands));
    writeLine(fullIo.stderr, `psy: unknown command '${name}'${hint === '' ? ' (see psy --help)' : hint}`);
    return 2;
  }
  const help = rest.includes('--help') || rest.includes('-h');
  try {
    // A no-op build is answered before the engine is loaded.
    if (name === 'build' && !help) {
      fast ??= await (await import('./build-fast.js')).fastBuild(rest, fullIo);
      if (fast.kind === 'done') return fast.code;
      if (fast.kind === 'checked') return await (await import('./commands/build.js')).runBuild(rest, fullIo, fast.noopCheck);
    }
    const command = await load();
    if (help) {
      writeLine(fullIo.stdout, command.help.includes('Exit status') ? command.help : `${command.help}\n\n${EXIT_STATUS}`);
      return 0;
    }
    return await command.run(rest, fullIo);
  } catch (err) {
    return reportFailure(name, err, fullIo.stderr);
  }
}
