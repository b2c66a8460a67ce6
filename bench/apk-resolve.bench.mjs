// Benchmark: psy's resolver on the real Alpine v3.16 x86_64 index (4929 packages)
// against the real `apk add --simulate` (apk-tools 2.14.10 built from source by
// test/helpers/apk-tools.ts) on the same worlds, alternating, same run. psy's side is
// the resolve alone (the index is parsed once, as psy parses it once per lock); apk's
// side is the whole process: it reads the signed index, resolves and prints the plan.
// Both must pick the same packages (a world where they differ stops the bench); whether
// psy's install order is also apk's is reported.
//
// Part of `npm run bench` (or `npm run bench -- apk-resolve`); standalone:
// `node bench/apk-resolve.mjs [--runs N] [--json]`. Needs ../shared (testdata, tools).
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, copyFileSync} from 'node:fs';
import {register} from 'node:module';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {parseArgs} from 'node:util';

const WORLDS = [
  ['alpine-base'],
  ['alpine-base', 'openssh'],
  ['python3'],
  ['busybox', 'curl', 'git', 'openssh', 'e2fsprogs', 'util-linux', 'grub-efi', 'linux-lts', 'mkinitfs'],
];

export async function run(argv = []) {
  register(new URL('../scripts/ts-hooks.mjs', import.meta.url));
  const {values} = parseArgs({args: argv, options: {runs: {type: 'string', default: '11'}, json: {type: 'boolean'}}, strict: false, allowPositionals: true});
  const runs = Number(values.runs ?? 11);

  const {apkTools, haveApkTools} = await import('../test/helpers/apk-tools.ts');
  const {alpineTestData} = await import('../test/helpers/shared-data.ts');
  const {readApkIndex} = await import('../src/apk/apkindex.ts');
  const {loadKeyring} = await import('../src/apk/keys.ts');
  const {resolve} = await import('../src/apk/resolver.ts');
  if (!haveApkTools()) throw new Error('apk-tools cannot be built here');
  const apk = apkTools();

  const repo = join(alpineTestData, 'v3.16/main');
  const keys = join(alpineTestData, 'keys');
  const index = readApkIndex(readFileSync(join(repo, 'x86_64/APKINDEX.tar.gz')), 'v3.16', {keyring: loadKeyring(keys)});
  const work = mkdtempSync(join(tmpdir(), 'psy-bench-resolve-'));
  const root = join(work, 'root');
  mkdirSync(join(root, 'etc/apk/keys'), {recursive: true});
  for (const k of readdirSync(keys)) copyFileSync(join(keys, k), join(root, 'etc/apk/keys', k));
  apk.run(['--root', root, 'add', '--initdb', '--no-cache', '--arch', 'x86_64']);

  const time = (f) => {
    const t = process.hrtime.bigint();
    const out = f();
    return [Number(process.hrtime.bigint() - t) / 1e6, out];
  };
  const psyResolve = (world) =>
    resolve({world, arch: 'x86_64', repositories: [{name: repo, records: index.records}]}).map((p) => `${p.record.name}-${p.record.version}`);
  const apkResolve = (world) =>
    [...apk.run(['--root', root, 'add', '--simulate', '--no-cache', '--repository', repo, ...world]).matchAll(/Installing (\S+) \((\S+)\)/g)].map(
      (m) => `${m[1]}-${m[2]}`,
    );
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  try {
    const results = [];
    for (const world of WORLDS) {
      const [, ours] = time(() => psyResolve(world));
      const [, theirs] = time(() => apkResolve(world));
      if (JSON.stringify([...ours].sort()) !== JSON.stringify([...theirs].sort())) {
        throw new Error(`psy and apk choose different packages for ${world.join(' ')}:\npsy ${ours.join(' ')}\napk ${theirs.join(' ')}`);
      }
      const sameOrder = JSON.stringify(ours) === JSON.stringify(theirs);
      const psy = [];
      const apkMs = [];
      for (let i = 0; i < runs; i++) {
        psy.push(time(() => psyResolve(world))[0]);
        apkMs.push(time(() => apkResolve(world))[0]);
      }
      results.push({
        world: world.join(' '),
        packages: ours.length,
        sameOrder,
        psyMedianMs: Number(median(psy).toFixed(1)),
        apkMedianMs: Number(median(apkMs).toFixed(1)),
      });
    }
    const out = {bench: 'apk-resolve', runs, indexRecords: index.records.length, results};
    if (values.json) console.log(JSON.stringify(out));
    else {
      console.log(`apk-resolve: v3.16 x86_64 index, ${index.records.length} records, median of ${runs}; psy and apk choose the same packages`);
      for (const r of results) {
        console.log(
          `  ${String(r.packages).padStart(3)} packages  psy resolve ${String(r.psyMedianMs).padStart(6)} ms   apk add --simulate ${String(r.apkMedianMs).padStart(6)} ms   ${r.sameOrder ? 'same order' : 'other order'}  (${r.world})`,
        );
      }
    }
  } finally {
    rmSync(work, {recursive: true, force: true});
  }
}
