/**
 * The first step of every `psy build`: is the config unchanged since it was compiled, and
 * does the no-op snapshot say nothing else changed? Kept apart from build.ts so that the
 * CLI can answer a no-op without loading the engine (see src/cli/build-fast.ts), and
 * hand what it found to build() when it cannot.
 */
import {configIdentity} from './load-config.js';
import {checkSnapshot, snapshotPath} from './noop-snapshot.js';

export interface NoopCheckOptions {
  readonly cwd: string;
  readonly configPath?: string;
  /** The requested targets, as given (empty = the defaults). */
  readonly targets: readonly string[];
  /** PATH as the steps would see it. */
  readonly envPath: string;
}

export interface NoopCheck {
  readonly root: string;
  readonly configPath: string;
  readonly identity: string;
  readonly snapshotFile: string;
  /** What the snapshot says; undefined: nothing usable, the full check decides alone. */
  readonly check: ReturnType<typeof checkSnapshot>;
}

/** undefined when the config changed since it was compiled (it must be evaluated). */
export async function noopCheck(options: NoopCheckOptions): Promise<NoopCheck | undefined> {
  const id = await configIdentity({cwd: options.cwd, ...(options.configPath === undefined ? {} : {configPath: options.configPath})});
  if (id === undefined) return undefined;
  const snapshotFile = snapshotPath(id.root, id.configPath, options.targets);
  return {...id, snapshotFile, check: checkSnapshot(snapshotFile, id.identity, options.targets, options.envPath)};
}
