// Engine benchmark: psy vs ninja vs make on the same synthetic DAG (bench/gen-dag.mjs),
// side by side in one run. Scenarios: full build, no-op, edit one source with a narrow
// cone, edit one with a ~10% cone, touch that source without changing it.
// Prints medians (seconds), psy/ninja ratios and how many commands each tool ran.
//
// Environment: PSY_BENCH_SIZES (default "100,1000,10000"), PSY_BENCH_JOBS (default 4).
import {spawnSync} from 'node:child_process';
import {appendFileSync, mkdtempSync, rmSync, utimesSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {generate} from './gen-dag.mjs';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const psyBin = join(repo, 'bin', 'psy.js');
const JOBS = Number(process.env.PSY_BENCH_JOBS ?? 4);

const tools = {
  psy: {
    cmd: [process.execPath, psyBin, 'build', '-j', String(JOBS)],
    clean: ['out', 'cache/state'],
    count: (out) => (out.match(/^\[\d+\/\d+\] /gm) ?? []).length,
  },
  ninja: {
    cmd: ['ninja', '-j', String(JOBS)],
    clean: ['out', '.ninja_log', '.ninja_deps'],
    count: (out) => (out.match(/^\[\d+\/\d+\] /gm) ?? []).length,
  },
  make: {
    cmd: ['make', '-j', String(JOBS)],
    clean: ['out'],
    count: (out) => (out.match(/^cat /gm) ?? []).length,
  },
};

function timeRun(tool, dir) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(tool.cmd[0], tool.cmd.slice(1), {cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28});
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${tool.cmd.join(' ')} failed in ${dir}: ${r.stderr}${r.stdout.slice(-2000)}`);
  return {secs, commands: tool.count(r.stdout)};
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function benchSize(n) {
  const base = mkdtempSync(join(tmpdir(), `psy-bench-${n}-`));
  const dirs = {};
  let meta;
  for (const name of Object.keys(tools)) {
    dirs[name] = join(base, name);
    meta = generate({dir: dirs[name], targets: n});
  }
  const reps = n >= 10000 ? {full: 1, other: 3} : n >= 1000 ? {full: 2, other: 5} : {full: 3, other: 7};
  const results = {};
  const record = (scenario, name, runs) => {
    results[scenario] ??= {};
    results[scenario][name] = {median: median(runs.map((r) => r.secs)), commands: runs.at(-1).commands, runs: runs.length};
  };
  const names = Object.keys(tools);
  // full: everything deleted first (outputs and tool state).
  const fullRuns = Object.fromEntries(names.map((x) => [x, []]));
  for (let i = 0; i < reps.full; i++) {
    for (const name of names) {
      for (const p of tools[name].clean) rmSync(join(dirs[name], p), {recursive: true, force: true});
      fullRuns[name].push(timeRun(tools[name], dirs[name]));
    }
  }
  for (const name of names) record('full', name, fullRuns[name]);
  // Let freshly written files leave psy's racy-timestamp window, then warm every tool once.
  sleep(2100);
  for (const name of names) timeRun(tools[name], dirs[name]);
  const scenario = (label, prepare) => {
    const runs = Object.fromEntries(names.map((x) => [x, []]));
    for (let i = 0; i < reps.other; i++) {
      for (const name of names) {
        prepare(dirs[name], i);
        runs[name].push(timeRun(tools[name], dirs[name]));
      }
    }
    for (const name of names) record(label, name, runs[name]);
  };
  scenario('noop', () => {});
  scenario('edit-narrow', (dir, i) => appendFileSync(join(dir, meta.narrow.src), `edit ${i}\n`));
  scenario('edit-wide', (dir, i) => appendFileSync(join(dir, meta.wide.src), `edit ${i}\n`));
  // Content unchanged, mtime moved forward (make and ninja rebuild the cone; psy must not).
  scenario('touch-wide', (dir, i) => {
    const t = new Date(Date.now() + (i + 1) * 1000);
    utimesSync(join(dir, meta.wide.src), t, t);
  });
  rmSync(base, {recursive: true, force: true});
  return {meta, results};
}

function table({meta, results}) {
  const n = meta.targets;
  const lines = [
    `### N = ${n} (fan-in ${meta.fanin}; narrow cone ${meta.narrow.cone}, wide cone ${meta.wide.cone}; -j${JOBS})`,
    '',
    '| scenario | psy | ninja | make | psy/ninja | commands psy/ninja/make |',
    '|---|---:|---:|---:|---:|---|',
  ];
  for (const [scenario, r] of Object.entries(results)) {
    const f = (x) => `${x.median.toFixed(3)} (${x.runs})`;
    const ratio = r.psy.median / r.ninja.median;
    lines.push(`| ${scenario} | ${f(r.psy)} | ${f(r.ninja)} | ${f(r.make)} | ${ratio.toFixed(2)}× | ${r.psy.commands}/${r.ninja.commands}/${r.make.commands} |`);
  }
  return lines.join('\n');
}

export async function run() {
  const sizes = (process.env.PSY_BENCH_SIZES ?? '100,1000,10000').split(',').map(Number);
  const v = (cmd) => spawnSync(cmd[0], cmd.slice(1), {encoding: 'utf8'}).stdout.split('\n')[0];
  console.log(`node ${process.version}, ${v(['ninja', '--version'])}, ${v(['make', '--version'])}; medians in seconds (runs)\n`);
  for (const n of sizes) {
    const t0 = Date.now();
    const r = benchSize(n);
    console.log(table(r));
    console.log(`\n(${((Date.now() - t0) / 1000).toFixed(0)} s for this size)\n`);
  }
}
