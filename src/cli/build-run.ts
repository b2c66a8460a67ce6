/**
 * `psy build` when the no-op check found work: the build command with the check the fast
 * path made. bin/psy.js calls this from a one-file CommonJS bundle of this module
 * (dist/cli/build-run.bundle.cjs, built by npm run build), so a build that runs a few
 * steps starts neither Node's ES module loader nor a few dozen module loads.
 */
import type {NoopCheck} from '../engine/noop-check.js';
import {globalOptions, lineIo, reportFailure} from './command.js';
import {runBuild} from './commands/build.js';

/** `argv`: the whole command line, as fastEntry took it (`[-C DIR] build ...`). */
export async function runEntry(argv: string[], noopCheck: {readonly result: NoopCheck | undefined; readonly startedAt: number}): Promise<number> {
  // Lines straight to the descriptors (see lineIo): a step's status line costs a write(2).
  const io = lineIo();
  try {
    const global = globalOptions(argv, io.cwd);
    return await runBuild(global.argv.slice(1), {...io, cwd: global.cwd}, noopCheck);
  } catch (err) {
    return reportFailure('build', err, io.stderr);
  }
}
