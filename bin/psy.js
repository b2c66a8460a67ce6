#!/usr/bin/env node
'use strict';
// CommonJS on purpose (see bin/package.json): `psy build` first runs the no-op check from
// its one-file CommonJS bundle (built by npm run build), so a build with nothing to do
// starts neither Node's ES module loader nor the rest of the CLI.
const {readFileSync, statSync} = require('node:fs');
const {join} = require('node:path');
const argv = process.argv.slice(2);
const cli = join(__dirname, '..', 'dist', 'cli');

/**
 * A bundle's exports while every module it was made from is unchanged (see
 * scripts/bundle-fast.mjs); undefined when it is missing or older than its modules
 * (`tsc` alone rebuilt dist/): the CLI then runs the same code from the modules.
 */
function bundle(entry) {
  let sources;
  try {
    ({sources} = JSON.parse(readFileSync(join(cli, `${entry}.bundle.json`), 'utf8')));
  } catch {
    return undefined;
  }
  for (const [rel, size, mtimeMs] of sources) {
    const st = statSync(join(cli, rel), {throwIfNoEntry: false});
    if (st === undefined || st.size !== size || st.mtimeMs !== mtimeMs) return undefined;
  }
  try {
    return require(join(cli, `${entry}.bundle.cjs`));
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
    return undefined;
  }
}

// `psy build` or `psy -C DIR build`: the bundle itself reads the options before the command.
const fastEntry = argv.includes('build') ? bundle('build-fast')?.fastEntry : undefined;
(async () => {
  const fast = fastEntry === undefined ? undefined : await fastEntry(argv);
  if (fast !== undefined && fast.kind === 'done') {
    process.exitCode = fast.code;
    return;
  }
  if (fast !== undefined && fast.kind === 'checked') {
    // Work to do: the build command from its bundle too, when there is one.
    const runEntry = bundle('build-run')?.runEntry;
    if (runEntry !== undefined) {
      process.exitCode = await runEntry(argv, fast.noopCheck);
      return;
    }
  }
  const {main} = await import('../dist/cli/psy.js');
  process.exitCode = await main(argv, undefined, fast);
})();
