/**
 * The options of `psy build` that watch mode accepts, checked here so that build.ts only
 * hands over: --watch cannot be combined with a dry run or JSON output, and --then needs
 * --watch.
 */
import {PsyError} from '../errors.js';
import type {CommandIo} from './command.js';
import {runWatchSession} from './watch-session.js';

export interface BuildFlags {
  readonly watch?: boolean;
  readonly then?: string;
  readonly 'dry-run'?: boolean;
  readonly json?: boolean;
  readonly verbose?: boolean;
  readonly config?: string;
}

export function watchFromBuildArgs(
  values: BuildFlags,
  targets: readonly string[],
  io: CommandIo,
  jobs: number | undefined,
  keepGoing: number | undefined,
): Promise<number> {
  if (values.watch !== true) throw new PsyError('usage', '--then needs --watch (see psy build --help)');
  if (values['dry-run'] === true) throw new PsyError('usage', '--watch cannot be combined with --dry-run');
  if (values.json === true) throw new PsyError('usage', '--watch cannot be combined with --json');
  if (values.then !== undefined && values.then.trim() === '') throw new PsyError('usage', '--then needs a command');
  return runWatchSession({
    io,
    targets,
    ...(values.config === undefined ? {} : {configPath: values.config}),
    ...(jobs === undefined ? {} : {jobs}),
    ...(keepGoing === undefined ? {} : {keepGoing}),
    verbose: values.verbose === true,
    ...(values.then === undefined ? {} : {then: values.then}),
  });
}
