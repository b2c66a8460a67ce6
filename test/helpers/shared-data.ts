import {existsSync} from 'node:fs';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

/** The repository root (this file is test/helpers/shared-data.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ../shared beside the repository: reference material and real Alpine test data. */
export const sharedDir = resolve(repoRoot, '..', 'shared');
export const alpineTestData = join(sharedDir, 'testdata', 'alpine');

/**
 * Whether the shared Alpine test data is present. In CI its absence is a failure (the
 * data is always beside the clone there); elsewhere tests that need it are skipped with
 * a message saying why, via `describe.skipIf(!haveAlpineTestData())`.
 */
export function haveAlpineTestData(): boolean {
  if (existsSync(join(alpineTestData, 'SHA256SUMS'))) return true;
  if (process.env['CI'] === 'true') {
    throw new Error(`shared test data missing: expected ${alpineTestData} (CI must have ../shared)`);
  }
  console.warn(`skipping: shared Alpine test data not found at ${alpineTestData}`);
  return false;
}
