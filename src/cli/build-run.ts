/**
 * `psy build` when the no-op check found work: the build command with the check the fast
 * path made. bin/psy.js calls this from a one-file CommonJS bundle of this module
 * (dist/cli/build-run.bundle.cjs, built by npm run build), so a build that runs a few
 * steps starts neither Node's ES module loader nor a few dozen module loads.
 */
import type {NoopCheck} from '../engine/noop-check.js';
import {processIo, reportFailure} from './command.js';
import {runBuild} from './commands/build.js';

export async function runEntry(argv: string[], noopCheck: {readonly result: NoopCheck | undefined; readonly startedAt: number}): Promise<number> {
  const io = processIo();
  try {
    return await runBuild(argv, io, noopCheck);
  } catch (err) {
    return reportFailure('build', err, io.stderr);
  }
}
