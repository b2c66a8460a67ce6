import {spawn, spawnSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {pathToFileURL} from 'node:url';
import type {LoadedConfig} from '../../src/engine/load-config.js';
import {repoRoot} from './shared-data.js';

export const psyBin = join(repoRoot, 'bin', 'psy.js');
/** Import specifiers test configs use to reach the engine's sources. */
export const configModule = pathToFileURL(join(repoRoot, 'src', 'engine', 'config.ts')).href;
export const ruleModule = pathToFileURL(join(repoRoot, 'src', 'engine', 'rule.ts')).href;
export const errorsModule = pathToFileURL(join(repoRoot, 'src', 'errors.ts')).href;

/** A config as the loader hands it over, for analyze(); nothing here touches the file system. */
export function loadedConfig(config: unknown): LoadedConfig {
  return {
    root: '/nonexistent',
    configPath: '/nonexistent/build.config.ts',
    config: config as LoadedConfig['config'],
    modules: [],
    identity: '',
    readFiles: [],
    moduleIdentity: () => undefined,
  };
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A temporary project folder with helpers to write files and run the built CLI. */
export class Rig {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'psy-engine-'));
  }

  path(rel: string): string {
    return join(this.dir, rel);
  }

  write(files: Record<string, string>): void {
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(dirname(this.path(rel)), {recursive: true});
      writeFileSync(this.path(rel), text);
    }
  }

  read(rel: string): string {
    return readFileSync(this.path(rel), 'utf8');
  }

  /** Run `psy ARGS` synchronously in the project folder. */
  psy(args: string[], env: NodeJS.ProcessEnv = {}): RunResult {
    const r = spawnSync(process.execPath, [psyBin, ...args], {
      cwd: this.dir,
      encoding: 'utf8',
      env: {...process.env, ...env},
      timeout: 120_000,
    });
    return {code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr};
  }

  /** Start `psy ARGS` without waiting. */
  spawnPsy(args: string[], env: NodeJS.ProcessEnv = {}) {
    const child = spawn(process.execPath, [psyBin, ...args], {cwd: this.dir, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']});
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const done = new Promise<RunResult>((resolve) => child.on('close', (code, signal) => resolve({code, signal, stdout, stderr})));
    return {child, done, output: () => stdout + stderr};
  }

  cleanup(): void {
    rmSync(this.dir, {recursive: true, force: true});
  }
}

/** Target names from the `[n/total] name: description (reason)` lines of started steps. */
export function startedSteps(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => /^\[\d+\/\d+\] (\S+?)(?=: | \(|$)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined);
}
