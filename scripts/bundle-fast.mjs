#!/usr/bin/env node
// Bundles the no-op fast path of `psy build` (dist/cli/build-fast.js and the modules it
// imports) into one CommonJS module, dist/cli/build-fast.bundle.cjs: bin/psy.js (itself
// CommonJS) answers a no-op without starting Node's ES module loader or loading a dozen
// modules. Likewise the build command itself (dist/cli/build-run.js, with the engine)
// into dist/cli/build-run.bundle.cjs, for a build the no-op check found work for.
// bin/psy.js falls back to the unbundled CLI when a bundle is missing, so a failure
// here only warns. Beside each bundle, <entry>.bundle.json names the modules it was made
// from with their size and mtime: bin/psy.js uses a bundle only while every one is
// unchanged, so `tsc` alone never leaves an old bundle running in place of new modules.
import {rmSync, statSync, writeFileSync} from 'node:fs';
import {dirname, join, relative} from 'node:path';
import {fileURLToPath} from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const {build} = await import('rolldown').catch(() => ({build: undefined}));
for (const [entry, what] of [
  ['build-fast', 'the no-op fast path'],
  ['build-run', 'the build command'],
]) {
  const out = join(repo, 'dist', 'cli', `${entry}.bundle.cjs`);
  const sources = join(repo, 'dist', 'cli', `${entry}.bundle.json`);
  rmSync(sources, {force: true});
  rmSync(out, {force: true});
  try {
    if (build === undefined) throw new Error('rolldown is not installed');
    const result = await build({
      input: join(repo, 'dist', 'cli', `${entry}.js`),
      platform: 'node',
      // Packages stay packages (the fast path never loads them; the full check may).
      external: (id) => !id.startsWith('.') && !id.startsWith('/'),
      logLevel: 'silent',
      // Same folder depth as the modules: paths relative to import.meta.url stay right.
      output: {file: out, format: 'cjs', codeSplitting: false},
    });
    const modules = result.output.flatMap((o) => (o.type === 'chunk' ? o.moduleIds : [])).filter((id) => id.startsWith(join(repo, 'dist') + '/'));
    if (modules.length === 0) throw new Error('rolldown named no module of dist/');
    const list = modules.map((id) => {
      const st = statSync(id);
      return [relative(dirname(out), id), st.size, st.mtimeMs];
    });
    writeFileSync(sources, JSON.stringify({sources: list}) + '\n');
  } catch (err) {
    rmSync(out, {force: true});
    rmSync(sources, {force: true});
    console.warn(
      `psy: warning: ${what} was not bundled (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); psy build loads it from its modules`,
    );
  }
}
