#!/usr/bin/env node
'use strict';
// CommonJS like psy.js beside it (bin/package.json); the CLI itself is an ES module.
import('../dist/cli/neuralupgrade.js').then(async ({main}) => {
  process.exitCode = await main(process.argv.slice(2));
});
