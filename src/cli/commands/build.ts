import {build} from '../../engine/build.js';
import {PsyError} from '../../errors.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';
import {StatusPrinter} from '../status.js';

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
      --json         print the result as JSON on stdout (no status line)
      --config FILE  use FILE instead of build.config.ts
  -w, --watch        keep the targets up to date: rebuild the stale cone on every save
      --then CMD     with --watch: run the shell command CMD after each successful build

Exit status: 0 success, 1 a step failed, 130 interrupted.`;

export const command: Command = {
  name: 'build',
  summary: 'build targets (only what is stale)',
  help,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('build', argv, {
      jobs: {type: 'string', short: 'j'},
      'keep-going': {type: 'string', short: 'k'},
      'dry-run': {type: 'boolean', short: 'n'},
      verbose: {type: 'boolean', short: 'v'},
      json: {type: 'boolean'},
      config: {type: 'string'},
      watch: {type: 'boolean', short: 'w'},
      then: {type: 'string'},
    });
    const jobs = intOption('--jobs', values.jobs, 1);
    const keepGoing = intOption('--keep-going', values['keep-going'], 0);
    if (values.watch === true || values.then !== undefined) {
      const {watchFromBuildArgs} = await import('../watch-args.js');
      return watchFromBuildArgs(values, positionals, io, jobs, keepGoing);
    }
    const out = io.stdout as NodeJS.WriteStream;
    const json = values.json === true;
    const status = new StatusPrinter({
      out: json ? io.stderr : out,
      tty: !json && out.isTTY === true && io.env['TERM'] !== 'dumb',
      verbose: values.verbose === true,
      ...(out.columns === undefined ? {} : {columns: out.columns}),
    });
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
      });
      status.close();
      if (json) {
        writeLine(io.stdout, JSON.stringify({
          ok: result.ok,
          ran: result.ran,
          upToDate: result.upToDate,
          failed: result.failed,
          skipped: result.skipped,
          wouldRun: result.wouldRun,
          interrupted: result.interrupted,
          outputs: result.outputs,
        }));
      } else if (result.interrupted) {
        // Already said.
      } else if (result.failed.length > 0) {
        const names = result.failed.map((f) => f.target).join(', ');
        writeLine(io.stderr, `psy build: ${result.failed.length} target${result.failed.length === 1 ? '' : 's'} failed: ${names}`);
      } else if (values['dry-run'] === true) {
        if (result.wouldRun.length === 0) writeLine(io.stdout, 'psy: no work to do');
      } else if (result.ran.length === 0) {
        writeLine(io.stdout, `psy: no work to do (${result.upToDate.length} targets up to date)`);
      }
      if (result.interrupted) return 130;
      return result.ok ? 0 : 1;
    } finally {
      status.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
    }
  },
};

function intOption(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new PsyError('usage', `${name} needs an integer ≥ ${min}, got "${value}"`);
  return n;
}
