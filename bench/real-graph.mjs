// The engine on the graph users build: the offline psyopsOS image project (the tests'
// fixture repository and the repository's alpine/ inputs, with one node), side by side
// with `node -e 0` in one run. Prints: no-op of `diskimg` and of the per-node
// `diskimg@NODE` against Node's own start (medians and the ratio), and a one-line edit
// of the init patch against a clean build (seconds, steps run).
//
// The project lives in cache/bench-real-graph/ (its config imports targets/ by a
// relative path); bench/real-graph-project.ts writes it, and the first run makes the
// fixture repository (about a minute; reused afterwards). PSY_BENCH_REPS: no-op runs (11).
import {spawnSync} from 'node:child_process';
import {readFileSync, rmSync, writeFileSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const psyBin = join(repo, 'bin', 'psy.js');
const NODE = 'bench';
const REPS = Number(process.env.PSY_BENCH_REPS ?? 11);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function timed(argv, cwd) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), {cwd, encoding: 'utf8', maxBuffer: 1 << 28});
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed in ${cwd}: ${r.stderr}${r.stdout.slice(-2000)}`);
  return {secs, stdout: r.stdout};
}

/** `psy build --json TARGETS`: seconds and the steps that ran. */
function build(dir, targets) {
  const r = timed([process.execPath, psyBin, 'build', '--json', ...targets], dir);
  return {secs: r.secs, ran: JSON.parse(r.stdout).ran};
}

/** `psy build TARGETS` (a no-op) and `node -e 0`, interleaved: medians and their ratio. */
function noop(dir, targets) {
  const psy = [];
  const node = [];
  for (let i = 0; i < REPS; i++) {
    node.push(timed([process.execPath, '-e', '0'], dir).secs);
    const r = timed([process.execPath, psyBin, 'build', ...targets], dir);
    if (!r.stdout.startsWith('psy: no work to do')) throw new Error(`psy build ${targets.join(' ')} was not a no-op: ${r.stdout}`);
    psy.push(r.secs);
  }
  return {psy: median(psy), node: median(node), ratio: median(psy) / median(node)};
}

export async function run() {
  const dir = join(repo, 'cache', 'bench-real-graph');
  const setup = spawnSync(process.execPath, ['--import', join(repo, 'scripts', 'register-ts.mjs'), join(repo, 'bench', 'real-graph-project.ts'), dir, NODE], {
    cwd: repo,
    stdio: 'inherit',
  });
  if (setup.status !== 0) throw new Error('bench/real-graph-project.ts failed');
  const env = {PSY_AGE_IDENTITY: join(dir, 'operator.key')};
  Object.assign(process.env, env);

  // Clean build: no outputs, no state, no snapshots.
  for (const p of ['cache/out', 'cache/state', 'cache/config']) rmSync(join(dir, p), {recursive: true, force: true});
  const clean = build(dir, ['diskimg']);
  const node = build(dir, [`diskimg@${NODE}`]);
  // Out of the racy window, then one build each writes its no-op snapshot.
  sleep(2100);
  build(dir, ['diskimg']);
  build(dir, [`diskimg@${NODE}`]);
  const generic = noop(dir, ['diskimg']);
  const perNode = noop(dir, [`diskimg@${NODE}`]);

  const patchPath = join(dir, 'alpine', 'initramfs-init.patch');
  const patch = readFileSync(patchPath, 'utf8');
  const from = '+# psyopsOS: psyopsos=<LABEL> names the A/B slot to boot.';
  if (!patch.includes(from)) throw new Error(`${patchPath}: the line the benchmark edits is gone: ${from}`);
  let edit;
  try {
    writeFileSync(patchPath, patch.replace(from, '+# psyopsOS: psyopsos=<LABEL> names the slot to boot.'));
    edit = build(dir, ['diskimg']);
  } finally {
    writeFileSync(patchPath, patch);
  }
  const back = build(dir, ['diskimg']);

  const f = (s) => `${s.toFixed(3)} s`;
  console.log(`### real graph: the offline psyopsOS image project (node ${process.version}; medians of ${REPS} runs, interleaved with node -e 0)\n`);
  console.log('| measure | psy | node -e 0 | ratio |');
  console.log('|---|---:|---:|---:|');
  console.log(`| no-op psy build diskimg | ${f(generic.psy)} | ${f(generic.node)} | ${generic.ratio.toFixed(2)}× |`);
  console.log(`| no-op psy build diskimg@${NODE} | ${f(perNode.psy)} | ${f(perNode.node)} | ${perNode.ratio.toFixed(2)}× |`);
  console.log('');
  console.log('| build | seconds | steps run |');
  console.log('|---|---:|---|');
  console.log(`| clean psy build diskimg | ${f(clean.secs)} | ${clean.ran.length} |`);
  console.log(`| then psy build diskimg@${NODE} | ${f(node.secs)} | ${node.ran.length} (${node.ran.join(', ')}) |`);
  console.log(
    `| one-line init-patch edit | ${f(edit.secs)} (${((100 * edit.secs) / clean.secs).toFixed(0)}% of clean) | ${edit.ran.length} (${edit.ran.join(', ')}) |`,
  );
  console.log(`| the edit undone | ${f(back.secs)} | ${back.ran.length} (${back.ran.join(', ')}) |`);
  console.log(
    `\ngoal: no-op ≤ 1.5× node -e 0: diskimg ${generic.ratio <= 1.5 ? 'met' : 'NOT met'}, diskimg@${NODE} ${perNode.ratio <= 1.5 ? 'met' : 'NOT met'}\n`,
  );
  return {generic, perNode, clean, edit};
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await run();
