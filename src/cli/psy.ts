import {isPsyError} from '../errors.js';
import {writeLine, type Command, type CommandIo} from './command.js';

/**
 * Commands are loaded on demand so that `psy build` on a no-op pays only for the modules
 * it uses. Each entry lives in src/cli/commands/<name>.ts and exports `command`.
 */
const commands: Record<string, () => Promise<Command>> = {};

export function registerCommand(name: string, load: () => Promise<Command>): void {
  commands[name] = load;
}

function topHelp(summaries: Array<[string, string]>): string {
  const width = Math.max(0, ...summaries.map(([n]) => n.length));
  return [
    'psy: build, sign, publish and update psyopsOS',
    '',
    'Usage: psy <command> [options]',
    '',
    'Commands:',
    ...summaries.map(([n, s]) => `  ${n.padEnd(width)}  ${s}`),
    '',
    'Run `psy <command> --help` for the options of one command.',
  ].join('\n');
}

export async function main(argv: string[], io?: Partial<CommandIo>): Promise<number> {
  const fullIo: CommandIo = {
    stdout: io?.stdout ?? process.stdout,
    stderr: io?.stderr ?? process.stderr,
    cwd: io?.cwd ?? process.cwd(),
    env: io?.env ?? process.env,
  };
  await import('./commands/index.js');
  const [name, ...rest] = argv;
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
    writeLine(fullIo.stderr, `psy: unknown command '${name}' (see psy --help)`);
    return 2;
  }
  const help = rest.includes('--help') || rest.includes('-h');
  try {
    // A no-op build is answered before the engine is loaded.
    if (name === 'build' && !help) {
      const fast = await (await import('./build-fast.js')).fastBuild(rest, fullIo);
      if (fast.kind === 'done') return fast.code;
      if (fast.kind === 'checked') return await (await import('./commands/build.js')).runBuild(rest, fullIo, fast.noopCheck);
    }
    const command = await load();
    if (help) {
      writeLine(fullIo.stdout, command.help);
      return 0;
    }
    return await command.run(rest, fullIo);
  } catch (err) {
    if (isPsyError(err)) {
      writeLine(fullIo.stderr, `psy ${name}: ${err.message}`);
      return err.code === 'usage' ? 2 : 1;
    }
    writeLine(fullIo.stderr, `psy ${name}: internal error, please report it:`);
    writeLine(fullIo.stderr, err instanceof Error ? (err.stack ?? err.message) : String(err));
    return 70;
  }
}
