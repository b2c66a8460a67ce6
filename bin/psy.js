#!/usr/bin/env node
'use strict';
// CommonJS on purpose (see bin/package.json): `psy build` first runs the no-op check from
// its one-file CommonJS bundle (built by npm run build), so a build with nothing to do
// starts neither Node's ES module loader nor the rest of the CLI.
const argv = process.argv.slice(2);
let fastEntry;
// `psy build` or `psy -C DIR build`: the bundle itself reads the options before the command.
if (argv.includes('build')) {
  try {
    ({fastEntry} = require('../dist/cli/build-fast.bundle.cjs'));
  } catch (err) {
    // Not bundled: the CLI runs the same check from its modules.
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
  }
}
(async () => {
  const fast = fastEntry === undefined ? undefined : await fastEntry(argv);
  if (fast !== undefined && fast.kind === 'done') {
    process.exitCode = fast.code;
    return;
  }
  if (fast !== undefined && fast.kind === 'checked') {
    // Work to do: the build command from its bundle too, when there is one.
    let runEntry;
    try {
      ({runEntry} = require('../dist/cli/build-run.bundle.cjs'));
    } catch (err) {
      if (err.code !== 'MODULE_NOT_FOUND') throw err;
    }
    if (runEntry !== undefined) {
      process.exitCode = await runEntry(argv, fast.noopCheck);
      return;
    }
  }
  const {main} = await import('../dist/cli/psy.js');
  process.exitCode = await main(argv, undefined, fast);
})();
