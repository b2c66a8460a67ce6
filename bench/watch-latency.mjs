// Watch-mode latency: time from a save to the start of the rebuild.
//
// For each project, `psy build --watch` runs in the background; the bench saves an input
// (a plain write, then alternately a temp-file + rename save) and timestamps the lines
// psy prints: `build N triggered by` (the watcher leaves its quiet period and starts the
// build), the first `[i/n] TARGET` step line (the engine starts the first stale step)
// and `build N succeeded`. Side by side, a bare chokidar watcher on the same file gives
// the floor: how long the file system event itself takes to arrive.
//
// Usage: npm run build && node bench/watch-latency.mjs [--saves N] [--targets N]
import {spawn} from 'node:child_process';
import {mkdtempSync, renameSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {parseArgs} from 'node:util';
import {generate} from './gen-dag.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const psyBin = resolve(here, '..', 'bin', 'psy.js');
const {values} = parseArgs({options: {saves: {type: 'string', default: '20'}, targets: {type: 'string', default: '1000'}}});
const SAVES = Number(values.saves);
const DAG = Number(values.targets);

/** A child process whose stdout lines are timestamped on arrival. */
function startLines(cmd, args, cwd) {
  const child = spawn(cmd, args, {cwd, stdio: ['ignore', 'pipe', 'pipe']});
  const lines = [];
  const waiters = [];
  let buf = '';
  const onData = (b) => {
    const now = performance.now();
    buf += b.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push({t: now, text: buf.slice(0, i)});
      buf = buf.slice(i + 1);
    }
    for (const w of [...waiters]) w();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const waitLine = (re, from, timeoutMs = 60_000) =>
    new Promise((res, rej) => {
      const check = () => {
        const hit = lines.slice(from).find((l) => re.test(l.text));
        if (hit === undefined) return;
        waiters.splice(waiters.indexOf(check), 1);
        clearTimeout(timer);
        res(hit);
      };
      const timer = setTimeout(() => rej(new Error(`timeout waiting for ${re}:\n${lines.map((l) => l.text).join('\n')}`)), timeoutMs);
      waiters.push(check);
      check();
    });
  return {child, lines, waitLine};
}

function save(path, text, atomic) {
  const t = performance.now();
  if (atomic) {
    writeFileSync(`${path}.tmp-save`, text);
    renameSync(`${path}.tmp-save`, path);
  } else {
    writeFileSync(path, text);
  }
  return t;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))];
const fmt = (xs) => `${median(xs).toFixed(0)} (p90 ${p90(xs).toFixed(0)})`;

async function measure(label, dir, targets, input) {
  const floorScript = `import {watch} from ${JSON.stringify(resolve(here, '..', 'node_modules', 'chokidar', 'esm', 'index.js'))};
const w = watch(${JSON.stringify(dirname(join(dir, input)))}, {ignoreInitial: true, depth: 0});
w.on('ready', () => console.log('ready'));
w.on('all', (ev, p) => { if (p === ${JSON.stringify(join(dir, input))}) console.log('event ' + ev); });`;
  const floor = startLines(process.execPath, ['--input-type=module', '-e', floorScript], dir);
  await floor.waitLine(/^ready$/, 0);
  const psy = startLines(process.execPath, [psyBin, 'build', '--watch', ...targets], dir);
  await psy.waitLine(/^psy watch: waiting for changes/, 0, 600_000);
  /** @type {Record<'event' | 'trigger' | 'step' | 'done', number[]>} */
  const r = {event: [], trigger: [], step: [], done: []};
  for (let i = 0; i < SAVES; i++) {
    const fromPsy = psy.lines.length;
    const fromFloor = floor.lines.length;
    const t0 = save(join(dir, input), `save ${i} ${Date.now()}\n`, i % 2 === 1);
    const ev = await floor.waitLine(/^event /, fromFloor);
    const trig = await psy.waitLine(/^psy watch: build \d+ triggered by/, fromPsy);
    const step = await psy.waitLine(/^\[\d+\/\d+\] /, fromPsy);
    const done = await psy.waitLine(/^psy watch: build \d+ (succeeded|failed)/, fromPsy);
    await psy.waitLine(/^psy watch: waiting for changes/, fromPsy);
    r.event.push(ev.t - t0);
    r.trigger.push(trig.t - t0);
    r.step.push(step.t - t0);
    r.done.push(done.t - t0);
    // Let the event of this save settle before the next one (not part of the figures).
    await new Promise((res) => setTimeout(res, 150));
  }
  psy.child.kill('SIGINT');
  floor.child.kill('SIGTERM');
  await Promise.all([new Promise((res) => psy.child.on('close', res)), new Promise((res) => floor.child.on('close', res))]);
  console.log(`| ${label} | ${fmt(r.event)} | ${fmt(r.trigger)} | ${fmt(r.step)} | ${fmt(r.done)} |`);
  return r;
}

const dirs = [];
try {
  console.log(`watch latency, ms from save (median of ${SAVES} saves, half plain writes, half temp + rename)\n`);
  console.log('| project | chokidar event (floor) | psy build starts | first step starts | build done |');
  console.log('|---|---:|---:|---:|---:|');

  const small = mkdtempSync(join(tmpdir(), 'psy-watch-bench-'));
  dirs.push(small);
  writeFileSync(join(small, 'input.txt'), 'x\n');
  writeFileSync(
    join(small, 'build.config.ts'),
    `export default {targets: [
  {name: 'copy', inputs: {s: 'input.txt'}, outputs: {o: 'copy.txt'}, command: 'cp $in $out'},
]};\n`,
  );
  await measure('1 target', small, ['copy'], 'input.txt');

  const big = mkdtempSync(join(tmpdir(), 'psy-watch-bench-'));
  dirs.push(big);
  const meta = generate({dir: big, targets: DAG});
  await measure(`${DAG} targets, edit with a cone of ${meta.narrow.cone}`, big, [], meta.narrow.src);
} finally {
  for (const d of dirs) rmSync(d, {recursive: true, force: true});
}
