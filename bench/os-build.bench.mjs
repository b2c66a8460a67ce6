// Benchmark: the psyopsOS build from the offline fixture repository. A clean build of
// diskimg (with the time of every step), no-op builds, and a one-line edit of the init
// patch (which re-runs init, initramfs, ostar and diskimg), as a fraction of the clean
// build. Goal: the edit rebuild ≤ 25% of the clean build.
//
// Part of `npm run bench` (or `npm run bench -- os-build`); standalone:
// `node bench/os-build.bench.mjs [--runs N] [--keep]`. Needs ../shared/testdata/alpine.
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {register} from 'node:module';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {parseArgs} from 'node:util';
import {pathToFileURL} from 'node:url';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(argv = []) {
  register(new URL('../scripts/ts-hooks.mjs', import.meta.url));
  const {values} = parseArgs({args: argv, options: {runs: {type: 'string', default: '3'}, keep: {type: 'boolean'}}, strict: false, allowPositionals: true});
  const runs = Number(values.runs ?? 3);
  const {buildFixtureRepository} = await import('../test/fixtures/build-fixture-repository.ts');
  const {fixtureSettings, writeProject} = await import('../test/os-project.ts');
  const {build} = await import('../src/engine/build.ts');

  const fx = await buildFixtureRepository();
  const dir = mkdtempSync(join(tmpdir(), 'psy-bench-os-'));
  try {
    await writeProject(dir, fixtureSettings(dir, fx));
    const timed = async () => {
      const steps = {};
      const logger = {event: (e) => void (e.type === 'finish' && (steps[e.target] = e.durationMs / 1000))};
      const t = performance.now();
      const r = await build({cwd: dir, targets: ['diskimg'], logger});
      if (!r.ok) throw new Error(`build failed: ${JSON.stringify(r.failed)}`);
      return {s: (performance.now() - t) / 1000, ran: r.ran, steps};
    };
    const clean = await timed();
    console.log(`clean build: ${clean.s.toFixed(1)} s`);
    for (const [t, s] of Object.entries(clean.steps).sort((a, b) => b[1] - a[1])) console.log(`  ${t.padEnd(12)} ${s.toFixed(1)} s`);
    await timed(); // settles the stat cache (files written within the racy window)
    const noops = [];
    for (let i = 0; i < Math.max(5, runs); i++) noops.push((await timed()).s);
    console.log(`no-op build: median ${(median(noops) * 1000).toFixed(0)} ms over ${noops.length} runs`);

    const patchPath = join(dir, 'alpine/initramfs-init.patch');
    const patch = readFileSync(patchPath, 'utf8');
    const edited = patch.replace('+# psyopsOS: psyopsos=<LABEL> names the A/B slot to boot.', '+# psyopsOS: psyopsos=<LABEL> names the slot to boot.');
    const edits = [];
    /** @type {readonly string[]} */
    let ran = [];
    for (let i = 0; i < runs; i++) {
      writeFileSync(patchPath, edited);
      const e = await timed();
      edits.push(e.s);
      ran = e.ran;
      writeFileSync(patchPath, patch);
      await timed();
    }
    const m = median(edits);
    console.log(`init-patch edit: median ${m.toFixed(2)} s over ${runs} runs (steps: ${[...ran].sort().join(' ')})`);
    console.log(`ratio edit/clean: ${((100 * m) / clean.s).toFixed(1)}% (goal <= 25%)`);
  } finally {
    if (values.keep) console.log(`project kept in ${dir}`);
    else rmSync(dir, {recursive: true, force: true});
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run(process.argv.slice(2));
