import {PassThrough} from 'node:stream';
import {main} from '../../src/cli/psy.js';

/** Runs psy's main in this process in `cwd`, with an empty environment. */
export async function runPsy(cwd: string, ...argv: string[]): Promise<{code: number; stdout: string; stderr: string}> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  let stderr = '';
  out.on('data', (d) => (stdout += d));
  err.on('data', (d) => (stderr += d));
  const code = await main(argv, {stdout: out, stderr: err, cwd, env: {}});
  return {code, stdout, stderr};
}
