import {spawn} from 'node:child_process';
import {existsSync, readdirSync, statSync} from 'node:fs';
import {join} from 'node:path';
import {repoRoot} from './shared-data.js';

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI (bin/psy.js → dist/) in `cwd` with exactly `env` (plus PATH/HOME). */
export function psy(args: string[], cwd: string, env: Record<string, string> = {}, input?: string): Promise<CliResult> {
  return new Promise((ok, bad) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'psy.js'), ...args], {
      cwd,
      env: {PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: cwd, AWS_EC2_METADATA_DISABLED: 'true', ...env},
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', bad);
    child.on('close', (code) => ok({code, stdout, stderr}));
    child.stdin.end(input ?? '');
  });
}

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, {withFileTypes: true})) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Tests that spawn the CLI run dist/ (`npm test` builds first). Fail loudly instead of
 * testing stale code when src/ is newer than dist/.
 */
export function assertBuilt(): void {
  const dist = join(repoRoot, 'dist', 'cli', 'psy.js');
  if (!existsSync(dist)) throw new Error('dist/ is missing: run `npm run build` first');
  const src = newestMtime(join(repoRoot, 'src'));
  if (src > newestMtime(join(repoRoot, 'dist'))) throw new Error('src/ is newer than dist/: run `npm run build` first');
}
