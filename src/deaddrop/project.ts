import {existsSync} from 'node:fs';
import {resolve} from 'node:path';
import {PsyError} from '../errors.js';

/** The parts of a project the signing and deaddrop commands need. */
export interface ProjectSettings {
  /** Project root (the config file's folder, or cwd without a config). */
  readonly root: string;
  /** config.settings, unvalidated (each command validates its own section). */
  readonly settings: Readonly<Record<string, unknown>>;
  readonly configPath: string | undefined;
}

/**
 * Loads build.config.ts (or .mjs, .js) when there is one. `required` commands (publish, deaddrop) need
 * it; sign/verify/keygen also work in a folder without one, from flags and environment.
 */
export async function loadProjectSettings(cwd: string, configPath: string | undefined, required: boolean): Promise<ProjectSettings> {
  const {findConfig, loadConfig} = await import('../engine/load-config.js');
  if (configPath === undefined && !required && !existsSync(findConfig(cwd))) {
    return {root: resolve(cwd), settings: {}, configPath: undefined};
  }
  const loaded = await loadConfig({cwd, ...(configPath === undefined ? {} : {configPath})});
  const settings = loaded.config.settings ?? {};
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
    throw new PsyError('bad-config', `${loaded.configPath}: settings must be an object`);
  }
  return {root: loaded.root, settings, configPath: loaded.configPath};
}
