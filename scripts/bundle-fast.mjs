#!/usr/bin/env node
// Bundles the no-op fast path of `psy build` (dist/cli/build-fast.js and the modules it
// imports) into one CommonJS module, dist/cli/build-fast.bundle.cjs: bin/psy.js (itself
// CommonJS) answers a no-op without starting Node's ES module loader or loading a dozen
// modules. Likewise the build command itself (dist/cli/build-run.js, with the engine)
// into dist/cli/build-run.bundle.cjs, for a build the no-op check found work for.
// bin/psy.js falls back to the unbundled CLI when a bundle is missing, so a failure
// here only warns.
import {rmSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const {build} = await import('rolldown').catch(() => ({build: undefined}));
for (const [entry, what] of [
  ['build-fast', 'the no-op fast path'],
  ['build-run', 'the build command'],
]) {
  const out = join(repo, 'dist', 'cli', `${entry}.bundle.cjs`);
  rmSync(out, {force: true});
  try {
    if (build === undefined) throw new Error('rolldown is not installed');
    await build({
      input: join(repo, 'dist', 'cli', `${entry}.js`),
      platform: 'node',
      // Packages stay packages (the fast path never loads them; the full check may).
      external: (id) => !id.startsWith('.') && !id.startsWith('/'),
      logLevel: 'silent',
      // Same folder depth as the modules: paths relative to import.meta.url stay right.
      output: {file: out, format: 'cjs', codeSplitting: false},
    });
  } catch (err) {
    rmSync(out, {force: true});
    console.warn(`psy: warning: ${what} was not bundled (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); psy build loads it from its modules`);
  }
}
