// Engine benchmark: first the real psyopsOS graph (bench/real-graph.mjs), then psy vs
// ninja vs make on the same synthetic DAG (bench/gen-dag.mjs), side by side in one run:
// a guard, checked at N = 10000 (full build and ~10% edit within 1.25× ninja, touch runs
// no command, no-op within 2× ninja). Scenarios: full build, no-op, edit one source with a narrow
// cone, edit one with a ~10% cone, touch that source without changing it.
// Prints medians (seconds), psy/ninja ratios and how many commands each tool ran.
//
// Environment: PSY_BENCH_SIZES (default "100,1000,10000"), PSY_BENCH_JOBS (default 4).
import {spawnSync} from 'node:child_process';
import {appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, utimesSync} from 'node:fs';
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

// CPU time (user+sys of the tool and its children) through GNU time when present: on a
// shared machine it is steadier than wall time.
const gnuTime = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const cpuFile = join(tmpdir(), `psy-bench-cpu-${process.pid}`);

function timeRun(tool, dir) {
  const argv = gnuTime === undefined ? tool.cmd : [gnuTime, '-f', '%U %S', '-o', cpuFile, ...tool.cmd];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), {cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28, ...(tool.env ? {env: tool.env} : {})});
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${tool.cmd.join(' ')} failed in ${dir}: ${r.stderr}${r.stdout.slice(-2000)}`);
  let cpu = NaN;
  if (gnuTime !== undefined) {
    const [u, sy] = readFileSync(cpuFile, 'utf8').trim().split('\n').at(-1)?.split(' ').map(Number) ?? [];
    cpu = u + sy;
  }
  return {secs, cpu, commands: tool.count(r.stdout)};
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** The no-op of psy without NODE_EXTRA_CA_CERTS, when it is set (see benchSize). */
let noCaNoop;

function benchSize(n) {
  noCaNoop = undefined;
  const base = mkdtempSync(join(tmpdir(), `psy-bench-${n}-`));
  const dirs = {};
  let meta;
  for (const name of Object.keys(tools)) {
    dirs[name] = join(base, name);
    meta = generate({dir: dirs[name], targets: n});
  }
  const reps = n >= 10000 ? {full: 1, other: 5} : n >= 1000 ? {full: 2, other: 5} : {full: 3, other: 7};
  const results = {};
  const record = (scenario, name, runs) => {
    results[scenario] ??= {};
    results[scenario][name] = {median: median(runs.map((r) => r.secs)), cpu: median(runs.map((r) => r.cpu)), commands: runs.at(-1).commands, runs: runs.length};
  };
  const names = Object.keys(tools);
  // full: everything deleted first (outputs and tool state).
  const fullRuns = Object.fromEntries(names.map((x) => [x, /** @type {{secs: number, cpu: number, commands: number}[]} */ ([])]));
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
    const runs = Object.fromEntries(names.map((x) => [x, /** @type {{secs: number, cpu: number, commands: number}[]} */ ([])]));
    for (let i = 0; i < reps.other; i++) {
      for (const name of names) {
        prepare(dirs[name], i);
        runs[name].push(timeRun(tools[name], dirs[name]));
      }
    }
    for (const name of names) record(label, name, runs[name]);
  };
  scenario('noop', () => {});
  // NODE_EXTRA_CA_CERTS makes every Node start parse a certificate bundle before any of
  // psy's code runs: the no-op again without it, to show what is psy's own
  if (process.env.NODE_EXTRA_CA_CERTS) {
    const {NODE_EXTRA_CA_CERTS: _, ...env} = process.env;
    const bare = {...tools.psy, env};
    const runs = [];
    for (let i = 0; i < reps.other; i++) {
      runs.push(timeRun(bare, dirs.psy));
      timeRun(tools.ninja, dirs.ninja);
    }
    noCaNoop = {median: median(runs.map((r) => r.secs)), runs: runs.length};
  }
  scenario('edit-narrow', (dir, i) => appendFileSync(join(dir, meta.narrow.src), `edit ${i}\n`));
  scenario('edit-wide', (dir, i) => appendFileSync(join(dir, meta.wide.src), `edit ${i}\n`));
  // Content unchanged, mtime moved forward (make and ninja rebuild the cone; psy must not).
  scenario('touch-wide', (dir, i) => {
    const t = new Date(Date.now() + (i + 1) * 1000);
    utimesSync(join(dir, meta.wide.src), t, t);
  });
  rmSync(base, {recursive: true, force: true});
  rmSync(cpuFile, {force: true});
  return {meta, results, noCaNoop};
}

function table({meta, results, noCaNoop}) {
  const n = meta.targets;
  const lines = [
    `### N = ${n} (fan-in ${meta.fanin}; narrow cone ${meta.narrow.cone}, wide cone ${meta.wide.cone}; -j${JOBS})`,
    '',
    '| scenario | psy | ninja | make | psy/ninja | CPU psy/ninja/make | CPU psy/ninja | commands psy/ninja/make |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const [scenario, r] of Object.entries(results)) {
    const f = (x) => `${x.median.toFixed(3)} (${x.runs})`;
    const ratio = r.psy.median / r.ninja.median;
    const cpu = `${r.psy.cpu.toFixed(2)}/${r.ninja.cpu.toFixed(2)}/${r.make.cpu.toFixed(2)}`;
    const cpuRatio = r.ninja.cpu > 0 ? `${(r.psy.cpu / r.ninja.cpu).toFixed(2)}×` : 'n/a';
    lines.push(
      `| ${scenario} | ${f(r.psy)} | ${f(r.ninja)} | ${f(r.make)} | ${ratio.toFixed(2)}× | ${cpu} | ${cpuRatio} | ${r.psy.commands}/${r.ninja.commands}/${r.make.commands} |`,
    );
  }
  if (noCaNoop !== undefined) {
    const ratio = noCaNoop.median / results.noop.ninja.median;
    lines.push('', `no-op with NODE_EXTRA_CA_CERTS unset for psy: ${noCaNoop.median.toFixed(3)} s (${noCaNoop.runs}), ${ratio.toFixed(2)}× ninja`);
  }
  return lines.join('\n');
}

/** The 10k guard: what the synthetic graph must keep against ninja. */
function guard({meta, results}) {
  const r = (s) => results[s].psy.median / results[s].ninja.median;
  const checks = [
    ['full ≤ 1.25× ninja', r('full') <= 1.25, `${r('full').toFixed(2)}×`],
    ['~10% edit ≤ 1.25× ninja', r('edit-wide') <= 1.25, `${r('edit-wide').toFixed(2)}×`],
    ['touch runs 0 commands', results['touch-wide'].psy.commands === 0, `${results['touch-wide'].psy.commands}`],
    ['no-op ≤ 2× ninja', r('noop') <= 2, `${r('noop').toFixed(2)}×`],
  ];
  return `guard (N = ${meta.targets}): ${checks.map(([what, ok, got]) => `${what}: ${got} ${ok ? 'ok' : 'FAILED'}`).join('; ')}`;
}

export async function run() {
  // First the graph users build (bench/real-graph.mjs); PSY_BENCH_REAL=0 leaves it out.
  if (process.env.PSY_BENCH_REAL !== '0') await (await import('./real-graph.mjs')).run();
  const sizes = (process.env.PSY_BENCH_SIZES ?? '100,1000,10000').split(',').map(Number);
  const v = (cmd) => spawnSync(cmd[0], cmd.slice(1), {encoding: 'utf8'}).stdout.split('\n')[0];
  console.log(
    `node ${process.version}, ${v(['ninja', '--version'])}, ${v(['make', '--version'])}; medians of wall seconds (runs); CPU = user+sys seconds of the tool and its children`,
  );
  console.log(
    `load average at start: ${(await import('node:os'))
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  // psy is a Node program: its no-op cannot be faster than Node starting up.
  const starts = Array.from({length: 7}, () => timeRun({cmd: [process.execPath, '-e', '0'], count: () => 0}, tmpdir()).secs);
  const extraCa = process.env.NODE_EXTRA_CA_CERTS ? ' (NODE_EXTRA_CA_CERTS is set: Node reads those certificates at every start)' : '';
  console.log(`node startup (node -e 0): ${median(starts).toFixed(3)} s${extraCa}\n`);
  for (const n of sizes) {
    const t0 = Date.now();
    const r = benchSize(n);
    console.log(table(r));
    if (n >= 10000) console.log(`\n${guard(r)}`);
    console.log(`\n(${((Date.now() - t0) / 1000).toFixed(0)} s for this size)\n`);
  }
}
