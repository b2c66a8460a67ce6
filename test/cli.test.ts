import {execFile} from 'node:child_process';
import {promisify} from 'node:util';
import {describe, expect, it} from 'vitest';
import {repoRoot} from './helpers/shared-data.js';

const run = promisify(execFile);
const psy = `${repoRoot}/bin/psy.js`;

describe('psy entry point', () => {
  it('lists commands with --help', async () => {
    const {stdout} = await run(process.execPath, [psy, '--help']);
    expect(stdout).toMatch(/^Usage: psy \[-C DIR\] <command>/m);
    expect(stdout).toMatch(/^ {2}version\b/m);
  });

  it('rejects an unknown command with one line and exit 2', async () => {
    const err = await run(process.execPath, [psy, 'frobnicate']).catch((e: unknown) => e);
    expect(err).toMatchObject({code: 2, stderr: "psy: unknown command 'frobnicate' (see psy --help)\n"});
  });
});
