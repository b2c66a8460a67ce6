/** How `psy build` shows a build: the status printer it feeds, and the closing lines. */
import {plural, writeLine, type CommandIo} from './command.js';
import type {BuildArgs} from './build-args.js';
import {StatusPrinter} from './status.js';

export function statusPrinter(values: BuildArgs['values'], io: CommandIo): StatusPrinter {
  const out = io.stdout as NodeJS.WriteStream;
  const json = values.json === true;
  return new StatusPrinter({
    out: json ? io.stderr : out,
    tty: !json && out.isTTY === true && io.env['TERM'] !== 'dumb',
    verbose: values.verbose === true,
    ...(out.columns === undefined ? {} : {columns: out.columns}),
  });
}

/** What a build printed at its end needs to know of the result. */
export interface ReportedResult {
  readonly ok: boolean;
  readonly ran: readonly string[];
  /** The steps that ran, with their times (ms since the epoch). */
  readonly steps: ReadonlyArray<{readonly target: string; readonly start: number; readonly end: number; readonly durationMs: number}>;
  readonly upToDate: readonly string[];
  /** upToDate.length (the plain report needs no names). */
  readonly upToDateCount: number;
  readonly failed: ReadonlyArray<{readonly target: string; readonly message: string}>;
  readonly skipped: readonly string[];
  readonly wouldRun: ReadonlyArray<{readonly target: string; readonly reason: string}>;
  readonly interrupted: boolean;
  readonly outputs: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** Print the closing lines (or the JSON result) and return the exit status. */
export function reportBuild(result: ReportedResult, values: BuildArgs['values'], io: CommandIo): number {
  if (values.json === true) {
    writeLine(
      io.stdout,
      JSON.stringify({
        ok: result.ok,
        ran: result.ran,
        steps: result.steps,
        upToDate: result.upToDate,
        failed: result.failed,
        skipped: result.skipped,
        wouldRun: result.wouldRun,
        interrupted: result.interrupted,
        outputs: result.outputs,
      }),
    );
  } else if (result.interrupted) {
    // Already said.
  } else if (result.failed.length > 0) {
    const names = result.failed.map((f) => f.target).join(', ');
    writeLine(io.stderr, `psy build: ${plural(result.failed.length, 'target')} failed: ${names}`);
  } else if (values['dry-run'] === true) {
    if (result.wouldRun.length === 0) writeLine(io.stdout, 'psy: no work to do');
  } else if (result.ran.length === 0) {
    writeLine(io.stdout, `psy: no work to do (${plural(result.upToDateCount, 'target')} up to date)`);
  }
  if (result.interrupted) return 130;
  return result.ok ? 0 : 1;
}
