#!/usr/bin/env node
// `psy build` first runs the no-op check from its one-file bundle (built by npm run
// build): a build with nothing to do never loads the rest of the CLI.
const argv = process.argv.slice(2);
let fast;
if (argv[0] === 'build') {
  let entry;
  try {
    entry = await import('../dist/cli/build-fast.bundle.js');
  } catch (err) {
    // Not bundled: the CLI runs the same check from its modules.
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
  }
  fast = await entry?.fastEntry(argv.slice(1));
}
if (fast?.kind === 'done') {
  process.exitCode = fast.code;
} else {
  const {main} = await import('../dist/cli/psy.js');
  process.exitCode = await main(argv, undefined, fast);
}
