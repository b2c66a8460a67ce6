/**
 * The real apk-tools, built from the source tarball in ../shared/tools, as an oracle for
 * what psy writes and reads. It is built once per inputs (the tarball's sha256) into
 * cache/tools/apk-tools-<sha>/ (PSY_TOOLS_CACHE overrides the cache folder): compiled in
 * a temporary folder and renamed into place, so two test workers racing to build it
 * both end with one complete copy.
 */
import {execFileSync, type ExecFileSyncOptions} from 'node:child_process';
import {createHash} from 'node:crypto';
import {copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync} from 'node:fs';
import {join} from 'node:path';
import {repoRoot, sharedDir} from './shared-data.js';

export const APK_TOOLS_VERSION = '2.14.10';
export const apkToolsTarball = join(sharedDir, 'tools', `apk-tools-${APK_TOOLS_VERSION}.tar.gz`);

export interface ApkTools {
  /** The folder holding `apk` and `libapk.so.*`. */
  readonly dir: string;
  readonly bin: string;
  /** Environment to run `bin` with (its shared library lives beside it). */
  readonly env: NodeJS.ProcessEnv;
  /** Runs apk; throws (with apk's stderr in the message) on a non-zero exit. */
  run(args: readonly string[]): string;
  /** Runs apk and returns its exit status with both outputs. */
  tryRun(args: readonly string[]): {status: number; stdout: string; stderr: string};
}

let built: ApkTools | undefined;
let failure: string | undefined;

function cacheRoot(): string {
  return process.env['PSY_TOOLS_CACHE'] ?? join(repoRoot, 'cache', 'tools');
}

function build(): ApkTools {
  const sha = createHash('sha256').update(readFileSync(apkToolsTarball)).digest('hex');
  const root = cacheRoot();
  const dir = join(root, `apk-tools-${sha.slice(0, 16)}`);
  mkdirSync(root, {recursive: true});
  // one worker builds, the others wait for its result (a lock older than the longest
  // build is taken to be left over from a killed run)
  const lock = `${dir}.lock`;
  for (;;) {
    if (existsSync(join(dir, 'apk'))) break;
    try {
      mkdirSync(lock);
    } catch {
      if (Date.now() - (statSync(lock, {throwIfNoEntry: false})?.mtimeMs ?? Date.now()) > 15 * 60_000) rmSync(lock, {recursive: true, force: true});
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
      continue;
    }
    try {
      if (!existsSync(join(dir, 'apk'))) buildInto(root, dir);
    } finally {
      rmSync(lock, {recursive: true, force: true});
    }
  }
  const env = {...process.env, LD_LIBRARY_PATH: dir};
  const bin = join(dir, 'apk');
  const opts = (): ExecFileSyncOptions => ({env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20});
  const tryRun = (args: readonly string[]) => {
    try {
      const stdout = execFileSync(bin, args, opts()) as unknown as string;
      return {status: 0, stdout, stderr: ''};
    } catch (err) {
      const e = err as {status?: number; stdout?: string; stderr?: string};
      return {status: e.status ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? ''};
    }
  };
  return {
    dir,
    bin,
    env,
    tryRun,
    run(args) {
      const r = tryRun(args);
      if (r.status !== 0) throw new Error(`apk ${args.join(' ')} exited ${r.status}:\n${r.stderr}${r.stdout}`);
      return r.stdout;
    },
  };
}

/** Compiles apk-tools in a temporary folder under `root` and renames the result to `dir`. */
function buildInto(root: string, dir: string): void {
  const tmp = mkdtempSync(join(root, '.build-apk-tools-'));
  try {
    execFileSync('tar', ['-xzf', apkToolsTarball, '-C', tmp], {stdio: 'pipe'});
    const src = join(tmp, `apk-tools-${APK_TOOLS_VERSION}`);
    // LUA=no: no help pages (they need lua); the build needs gcc, make, pkg-config,
    // libssl-dev and zlib1g-dev (scripts/install-deps.sh)
    execFileSync('make', ['-j2', 'LUA=no'], {cwd: src, stdio: 'pipe', maxBuffer: 64 << 20});
    const out = join(tmp, 'out');
    mkdirSync(out);
    for (const f of readdirSync(join(src, 'src'))) {
      if (f === 'apk' || /^libapk\.so\.\d/.test(f)) copyFileSync(join(src, 'src', f), join(out, f));
    }
    execFileSync('chmod', ['0755', join(out, 'apk')]);
    try {
      renameSync(out, dir);
    } catch (err) {
      // another worker finished first: theirs is the same build
      if (!existsSync(join(dir, 'apk'))) throw err;
    }
  } finally {
    rmSync(tmp, {recursive: true, force: true});
  }
}

/**
 * Builds (or reuses) apk-tools. Under CI=true a missing tarball or a failed build is a
 * failure; elsewhere tests that need apk are skipped with a message saying why, via
 * `describe.skipIf(!haveApkTools())`.
 */
export function haveApkTools(): boolean {
  if (built) return true;
  if (failure === undefined) {
    try {
      if (!existsSync(apkToolsTarball)) throw new Error(`apk-tools source not found at ${apkToolsTarball}`);
      built = build();
      return true;
    } catch (err) {
      const e = err as Error & {stderr?: Buffer | string};
      failure = `${e.message}${e.stderr ? `\n${String(e.stderr).slice(-2000)}` : ''}`;
    }
  }
  if (process.env['CI'] === 'true') throw new Error(`cannot build apk-tools (CI must): ${failure}`);
  console.warn(`skipping: cannot build apk-tools: ${failure}`);
  return false;
}

/** Whether the apk-tools source tarball is there (CI=true: its absence is a failure). */
export function haveApkToolsSource(): boolean {
  if (existsSync(apkToolsTarball)) return true;
  if (process.env['CI'] === 'true') throw new Error(`apk-tools source missing: expected ${apkToolsTarball} (CI must have ../shared)`);
  console.warn(`skipping: apk-tools source not found at ${apkToolsTarball}`);
  return false;
}

/** The built apk-tools; call after `haveApkTools()` returned true. */
export function apkTools(): ApkTools {
  if (!built && !haveApkTools()) throw new Error('apk-tools is not available');
  return built!;
}
