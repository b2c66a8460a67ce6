import {build} from '../../engine/build.js';
import type {NoopCheck} from '../../engine/noop-check.js';
import {intOption, parseBuildArgs} from '../build-args.js';
import {reportBuild, statusPrinter} from '../build-report.js';
import type {Command, CommandIo} from '../command.js';

const help = `Usage: psy build [options] [TARGET...]

Builds the named targets (default: the config's default targets) and everything they
depend on. Only stale targets run: a target is stale when its rule or command, its
parameters, its tools' versions or the content of any input changed, or an output is
missing or was modified.

Options:
  -j, --jobs N       run N steps at once (default: number of cores)
  -k, --keep-going N stop after N failures (default 1; 0 = never stop early)
  -n, --dry-run      print what would run and why; run nothing
  -v, --verbose      print every step with the reason it runs
      --json         print the result as JSON on stdout (no status line), with each
                     step's start, end and duration (ms) in "steps"
      --config FILE  use FILE instead of build.config.ts (default: build.config.ts,
                     .mjs or .js in the current folder)
  -w, --watch        keep the targets up to date: rebuild the stale cone on every save
      --then CMD     with --watch: run the shell command CMD after each successful build

Every step that ran is logged with its start, end and duration in cache/state/build.log
(a line per step: start_ms end_ms duration_ms target key).

Exit status: 0 success, 1 a step failed (or a config error), 2 usage error, 130 interrupted.`;

/**
 * `psy build`. `noopCheck` is the no-op check the CLI's fast path already made for these
 * arguments (see build-fast.ts); build() then does not make it again.
 */
export async function runBuild(
  argv: string[],
  io: CommandIo,
  noopCheck?: {readonly result: NoopCheck | undefined; readonly startedAt: number},
): Promise<number> {
  const {values, positionals} = parseBuildArgs(argv);
  const jobs = intOption('--jobs', values.jobs, 1);
  const keepGoing = intOption('--keep-going', values['keep-going'], 0);
  if (values.watch === true || values.then !== undefined) {
    const {watchFromBuildArgs} = await import('../watch-args.js');
    return watchFromBuildArgs(values, positionals, io, jobs, keepGoing);
  }
  const status = statusPrinter(values, io);
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => abort.abort(sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    const result = await build({
      cwd: io.cwd,
      ...(values.config === undefined ? {} : {configPath: values.config}),
      targets: positionals,
      ...(jobs === undefined ? {} : {jobs}),
      ...(keepGoing === undefined ? {} : {keepGoing}),
      dryRun: values['dry-run'] === true,
      logger: status,
      signal: abort.signal,
      env: io.env,
      ...(noopCheck === undefined ? {} : {noopCheck}),
    });
    status.close();
    // Not spread: the outputs are decoded only if the report shows them (--json).
    return reportBuild(
      {
        ok: result.ok,
        ran: result.ran,
        steps: result.steps,
        upToDate: result.upToDate,
        upToDateCount: result.upToDate.length,
        failed: result.failed,
        skipped: result.skipped,
        wouldRun: result.wouldRun,
        interrupted: result.interrupted,
        get outputs() {
          return result.outputs;
        },
      },
      values,
      io,
    );
  } finally {
    status.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}

export const command: Command = {
  name: 'build',
  summary: 'build targets (only what is stale)',
  help,
  run: (argv, io) => runBuild(argv, io),
};
