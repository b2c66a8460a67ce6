// Crash soak for the engine (longer than the test suite's 24 kills): build a project
// whose steps write outputs in pieces, SIGKILL psy at random moments while sources
// change, and after every round check that a finishing build gives outputs
// byte-identical to a clean build of the same sources and leaves nothing to do.
//
//   npm run build && node bench/engine-crash-soak.mjs [ROUNDS=10] [KILLS_PER_ROUND=30]
import {spawn, spawnSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {register} from 'node:module';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

// The output comparison is the crash test's own (a TypeScript helper).
register('../scripts/ts-hooks.mjs', import.meta.url);
const {snapshot} = await import('../test/helpers/crash-project.ts');

const repo = dirname(dirname(fileURLToPath(import.meta.url)));
const psy = join(repo, 'bin', 'psy.js');
const rounds = Number(process.argv[2] ?? 10);
const kills = Number(process.argv[3] ?? 30);

function project(dir, variants) {
  mkdirSync(join(dir, 'src'), {recursive: true});
  variants.forEach((v, i) => writeFileSync(join(dir, 'src', `s${i}.txt`), `source ${i} variant ${v}\n`.repeat(1 + (v % 7) * 500)));
  writeFileSync(
    join(dir, 'build.config.ts'),
    `const targets = [];
for (let i = 0; i < 60; i++) {
  const deps = {};
  if (i >= 4) deps.a = {target: 't' + (i - 4), output: 'main'};
  if (i >= 9) deps.b = {target: 't' + (i - 9), output: 'main'};
  targets.push({
    name: 't' + i,
    inputs: {src: 'src/s' + (i % 8) + '.txt', ...deps},
    outputs: i % 6 === 0 ? {main: 't' + i + '.out', extra: 'x/t' + i + '.sha'} : {main: 't' + i + '.out'},
    command: i % 6 === 0
      ? 'cat $in > $out_main; sleep 0.01; cat $in | md5sum >> $out_main; cat $in | sha1sum > $out_extra'
      : 'printf "begin\\\\n" > $out; cat $in | head -c 20000 >> $out; sleep 0.0' + (i % 3) + '; cat $in | md5sum >> $out',
  });
}
targets.push({name: 'tree', inputs: {x: {target: 't50', output: 'main'}}, outputs: {d: {dir: 'tree'}},
  command: 'mkdir -p $out/a/b && cp $in $out/a/b/x && sleep 0.01 && cp $in $out/y'});
export default {targets};
`,
  );
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let total = 0;
let midway = 0;
for (let round = 0; round < rounds; round++) {
  const work = mkdtempSync(join(tmpdir(), 'psy-soak-'));
  const variants = [0, 0, 0, 0, 0, 0, 0, 0];
  project(work, variants);
  for (let k = 0; k < kills; k++) {
    if (Math.random() < 0.6) {
      variants[Math.floor(Math.random() * variants.length)] += 1;
      project(work, variants);
    }
    const child = spawn(process.execPath, [psy, 'build', '-j', String(1 + Math.floor(Math.random() * 4))], {cwd: work, stdio: 'ignore'});
    const exited = new Promise((r) => child.on('close', (code, signal) => r({code, signal})));
    await sleep(Math.random() * 1500);
    const wasRunning = child.exitCode === null;
    child.kill('SIGKILL');
    const r = await exited;
    total++;
    if (wasRunning && r.signal === 'SIGKILL') midway++;
    else if (r.code !== 0) throw new Error(`round ${round}: a build failed with ${r.code}`);
  }
  const fin = spawnSync(process.execPath, [psy, 'build', '-j2'], {cwd: work, encoding: 'utf8'});
  if (fin.status !== 0) throw new Error(`round ${round}: finishing build failed:\n${fin.stdout}${fin.stderr}`);
  const ref = mkdtempSync(join(tmpdir(), 'psy-soak-ref-'));
  project(ref, variants);
  const clean = spawnSync(process.execPath, [psy, 'build', '-j2'], {cwd: ref, encoding: 'utf8'});
  if (clean.status !== 0) throw new Error(`round ${round}: reference build failed:\n${clean.stdout}${clean.stderr}`);
  const got = snapshot(join(work, 'cache/out'));
  const want = snapshot(join(ref, 'cache/out'));
  const diff = [...new Set([...Object.keys(got), ...Object.keys(want)])].filter((k) => got[k] !== want[k]);
  if (diff.length > 0) throw new Error(`round ${round}: outputs differ from a clean build: ${diff.join(', ')} (kept in ${work})`);
  const noop = spawnSync(process.execPath, [psy, 'build'], {cwd: work, encoding: 'utf8'});
  if (!/no work to do/.test(noop.stdout)) throw new Error(`round ${round}: state disagrees with outputs:\n${noop.stdout}`);
  rmSync(work, {recursive: true, force: true});
  rmSync(ref, {recursive: true, force: true});
  console.log(`round ${round + 1}/${rounds}: ${kills} kills, outputs identical to a clean build`);
}
console.log(`soak passed: ${total} kills (${midway} during a build)`);
