// Benchmark: install the minirootfs package set (the offline fixture repository's
// re-packed Alpine 3.20.3 packages) into an empty root with psy's installer, against
// `tar -xzf` of the official minirootfs tarball (the floor), alternating, same run.
// psy's side includes reading each .apk from disk, verifying its signature and datahash,
// inflating, writing the tree, the installed database, busybox links and the manifest.
//
// Part of `npm run bench` (or `npm run bench -- apk-install`); standalone:
// `node bench/apk-install.mjs [--runs N] [--json]`. Needs ../shared/testdata/alpine.
import {execFileSync} from 'node:child_process';
import {mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs';
import {register} from 'node:module';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {parseArgs} from 'node:util';

export async function run(argv = []) {
  register(new URL('../scripts/ts-hooks.mjs', import.meta.url));
  const {values} = parseArgs({args: argv, options: {runs: {type: 'string', default: '15'}, json: {type: 'boolean'}}, strict: false, allowPositionals: true});
  const runs = Number(values.runs ?? 15);

  const {buildFixtureRepository, MINIROOTFS_INSTALL_ORDER} = await import('../test/fixtures/build-fixture-repository.ts');
  const {readApk} = await import('../src/apk/apk-package.ts');
  const {installPackages} = await import('../src/apk/installer.ts');
  const {loadKeyring} = await import('../src/apk/keys.ts');

  const fx = await buildFixtureRepository({kernel: false});
  const keyring = loadKeyring(fx.keysDir);
  const order = MINIROOTFS_INSTALL_ORDER;
  const files = readdirSync(fx.archDir);
  const paths = order.map((n) => join(fx.archDir, String(files.find((f) => f.startsWith(`${n}-`) && /^[0-9]/.test(f.slice(n.length + 1))))));
  const keyPem = readFileSync(join(fx.keysDir, fx.keyName));

  const work = mkdtempSync(join(tmpdir(), 'psy-bench-apk-'));
  let n = 0;
  function psyInstall() {
    const root = join(work, `psy-${n++}`);
    const t = process.hrtime.bigint();
    const packages = paths.map((p) => readApk(readFileSync(p), p, {keyring}));
    installPackages({root, packages, world: fx.minirootfsWorld, repositories: [], keys: [[fx.keyName, keyPem]], arch: 'x86_64', sourceDateEpoch: 1725622440});
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    rmSync(root, {recursive: true, force: true});
    return ms;
  }
  function tarExtract() {
    const root = join(work, `tar-${n++}`);
    execFileSync('mkdir', [root]);
    const t = process.hrtime.bigint();
    execFileSync('tar', ['-xzf', fx.minirootfsTarball, '-C', root]);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    rmSync(root, {recursive: true, force: true});
    return ms;
  }

  try {
    psyInstall();
    tarExtract(); // warm-up: page cache, JIT
    const psy = [];
    const tar = [];
    for (let i = 0; i < runs; i++) {
      psy.push(psyInstall());
      tar.push(tarExtract());
    }
    const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
    const result = {
      bench: 'apk-install',
      runs,
      packages: paths.length,
      psyMedianMs: Number(median(psy).toFixed(1)),
      tarMedianMs: Number(median(tar).toFixed(1)),
      ratio: Number((median(psy) / median(tar)).toFixed(2)),
      goal: '<= 2.0',
    };
    if (values.json) console.log(JSON.stringify(result));
    else {
      console.log(`apk-install: psy install of ${paths.length} packages ${result.psyMedianMs} ms (median of ${runs})`);
      console.log(`             tar -xzf minirootfs           ${result.tarMedianMs} ms`);
      console.log(`             ratio ${result.ratio}x (goal <= 2x)`);
    }
  } finally {
    rmSync(work, {recursive: true, force: true});
  }
}
