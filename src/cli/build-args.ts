/** The options of `psy build`, shared by the command and its no-op fast path. */
import {PsyError} from '../errors.js';
import {parseCommandArgs} from './command.js';

export const buildOptions = {
  jobs: {type: 'string', short: 'j'},
  'keep-going': {type: 'string', short: 'k'},
  'dry-run': {type: 'boolean', short: 'n'},
  verbose: {type: 'boolean', short: 'v'},
  json: {type: 'boolean'},
  config: {type: 'string'},
  watch: {type: 'boolean', short: 'w'},
  then: {type: 'string'},
} as const;

export function parseBuildArgs(argv: string[]) {
  return parseCommandArgs('build', argv, buildOptions);
}

export type BuildArgs = ReturnType<typeof parseBuildArgs>;

export function intOption(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new PsyError('usage', `${name} needs an integer ≥ ${min}, got "${value}"`);
  return n;
}
