/**
 * `psy build` when nothing changed, answered before the engine is loaded: this module
 * imports only the no-op check (config manifest, snapshot, batch stat), the lock and the
 * status printer. When every file the snapshot watches is unchanged it prints exactly
 * what the build command prints for a no-op; otherwise it hands the check it made to the
 * build command (build() does not make it again).
 */
import {BuildLock} from '../engine/lock.js';
import {noopCheck, type NoopCheck} from '../engine/noop-check.js';
import {intOption, parseBuildArgs} from './build-args.js';
import {reportBuild, statusPrinter} from './build-report.js';
import {globalOptions, lineIo, reportFailure, type CommandIo} from './command.js';

export type FastBuild =
  /** Answered: the exit status. */
  | {readonly kind: 'done'; readonly code: number}
  /** Not a no-op: the check made, for build(). */
  | {readonly kind: 'checked'; readonly noopCheck: {readonly result: NoopCheck | undefined; readonly startedAt: number}}
  /** Not for the fast path (watch, dry run, bad arguments): the build command decides. */
  | {readonly kind: 'none'};

const none: FastBuild = {kind: 'none'};

/**
 * `psy [-C DIR] build ARGV` in this process, failures reported as the CLI reports them
 * ('none' for any other command). bin/psy.js
 * calls this from a one-file bundle of this module (dist/cli/build-fast.bundle.cjs): one
 * module to load instead of a dozen.
 */
export async function fastEntry(argv: string[]): Promise<FastBuild> {
  // Writing a line needs no stream objects (their creation alone costs milliseconds).
  let io = lineIo();
  try {
    // The whole command line: `-C DIR` may come first (main reports its mistakes).
    let global: ReturnType<typeof globalOptions>;
    try {
      global = globalOptions(argv, io.cwd);
    } catch {
      return none;
    }
    if (global.argv[0] !== 'build') return none;
    io = {...io, cwd: global.cwd};
    return await fastBuild(global.argv.slice(1), io);
  } catch (err) {
    return {kind: 'done', code: reportFailure('build', err, io.stderr)};
  }
}

export async function fastBuild(argv: string[], io: CommandIo): Promise<FastBuild> {
  if (argv.includes('--help') || argv.includes('-h')) return none;
  let args: ReturnType<typeof parseBuildArgs>;
  try {
    args = parseBuildArgs(argv);
    intOption('--jobs', args.values.jobs, 1);
    intOption('--keep-going', args.values['keep-going'], 0);
  } catch {
    // The build command reports bad arguments.
    return none;
  }
  const {values, positionals} = args;
  if (values.watch === true || values.then !== undefined || values['dry-run'] === true) return none;
  const startedAt = Date.now();
  const result = await noopCheck({
    cwd: io.cwd,
    ...(values.config === undefined ? {} : {configPath: values.config}),
    targets: positionals,
    envPath: io.env['PATH'] ?? '',
  });
  const checked: FastBuild = {kind: 'checked', noopCheck: {result, startedAt}};
  if (result?.check?.kind !== 'fresh') return checked;
  const fresh = result.check.result;
  // The target names are decoded only for the outputs that show them.
  const names = values.json === true || values.verbose === true;
  let upToDate: readonly string[] = [];
  let outputs: Record<string, Record<string, string>> = {};
  if (names) {
    try {
      upToDate = fresh.upToDate;
      outputs = fresh.outputs;
    } catch {
      return checked;
    }
  }
  // Same rule as a full build: one build at a time per state folder.
  BuildLock.acquire(fresh.stateDir).release();
  // Without the names (neither --json nor --verbose) the status printer shows nothing for
  // a no-op, on a terminal or not; asking whether stdout is one would create the stream.
  if (names) {
    const status = statusPrinter(values, io);
    try {
      status.event({type: 'plan', total: fresh.upToDateCount});
      for (const target of upToDate) status.event({type: 'fresh', target});
    } finally {
      status.close();
    }
  }
  const code = reportBuild(
    {ok: true, ran: [], steps: [], upToDate, upToDateCount: fresh.upToDateCount, failed: [], skipped: [], wouldRun: [], interrupted: false, outputs},
    values,
    io,
  );
  return {kind: 'done', code};
}
