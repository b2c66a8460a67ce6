#!/usr/bin/env node
// Builds the native stat addon (native/) with node-gyp, as part of `npm run build`.
// psy works without it (a slower JS fallback answers the same), so a failed build only
// warns. Skips the build when the addon is newer than its sources.
import {spawnSync} from 'node:child_process';
import {existsSync, statSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const dir = join(repo, 'native');
const addon = join(dir, 'build', 'Release', 'stat_batch.node');
const sources = ['stat-batch.c', 'binding.gyp'].map((f) => join(dir, f));

const mtime = (p) => statSync(p, {throwIfNoEntry: false})?.mtimeMs ?? -1;
if (process.env.PSY_NATIVE === '0') {
  console.warn('psy: native stat addon not built (PSY_NATIVE=0); psy uses its JS fallback');
  process.exit(0);
}
if (mtime(addon) > Math.max(...sources.map(mtime))) process.exit(0);

// npm names its bundled node-gyp to scripts; outside npm, look beside node's npm.
const prefix = dirname(dirname(process.execPath));
const gyp = [process.env.npm_config_node_gyp, join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find(
  (p) => p !== undefined && p !== '' && existsSync(p),
);
const args = ['rebuild'];
// Node's own headers when installed beside it: no download of a headers tarball.
if (process.env.npm_config_nodedir === undefined && existsSync(join(prefix, 'include', 'node', 'common.gypi'))) args.push(`--nodedir=${prefix}`);
const r = gyp === undefined
  ? spawnSync('node-gyp', args, {cwd: dir, encoding: 'utf8'})
  : spawnSync(process.execPath, [gyp, ...args], {cwd: dir, encoding: 'utf8'});
if (r.status !== 0) {
  // node-gyp's own error lines, without its stack trace.
  const lines = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => /error/i.test(l) && !/ERR! stack\s+at /.test(l));
  const why = r.error?.message ?? lines.slice(0, 4).map((l) => `  ${l.trim()}`).join('\n');
  console.warn(`psy: warning: the native stat addon did not build; psy uses its slower JS fallback.\n  needs: python3, make, a C compiler and Node's headers\n${why}`);
}
