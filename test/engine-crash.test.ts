import {appendFileSync, existsSync, readFileSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {crashProjectFiles, seeded, snapshot} from './helpers/crash-project.js';
import {Rig, startedSteps} from './helpers/engine-rig.js';

let work: Rig;
let reference: Rig;
beforeEach(() => {
  work = new Rig();
  reference = new Rig();
});
afterEach(() => {
  work.cleanup();
  reference.cleanup();
});

const KILLS = 24;

describe('crash safety', () => {
  it(`SIGKILL at ${KILLS} random moments: the next build equals a clean build`, async () => {
    const rand = seeded(20261126);
    const variants = [0, 0, 0, 0, 0, 0];
    work.write(crashProjectFiles((i) => variants[i]!));
    let killedMidway = 0;
    for (let k = 0; k < KILLS; k++) {
      // Change a source now and then so killed builds leave state of different ages.
      if (rand() < 0.5) {
        const i = Math.floor(rand() * 6);
        variants[i]! += 1;
        work.write({[`src/s${i}.txt`]: `source ${i} variant ${variants[i]}\n`});
      }
      const run = work.spawnPsy(['build', '-j', String(1 + Math.floor(rand() * 4))]);
      const delay = Math.floor(rand() * 700);
      await new Promise((r) => setTimeout(r, delay));
      const alive = run.child.exitCode === null;
      run.child.kill('SIGKILL');
      const r = await run.done;
      if (alive && r.signal === 'SIGKILL') killedMidway++;
      else expect(r.code, run.output()).toBe(0);
    }
    // Most kills must have landed during a build, not after it.
    expect(killedMidway).toBeGreaterThanOrEqual(KILLS / 2);

    const finished = work.psy(['build', '-j2']);
    expect(finished.code, finished.stdout + finished.stderr).toBe(0);
    reference.write(crashProjectFiles((i) => variants[i]!));
    const clean = reference.psy(['build', '-j2']);
    expect(clean.code).toBe(0);
    const got = snapshot(work.path('cache/out'));
    const want = snapshot(reference.path('cache/out'));
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    expect(got).toEqual(want);
    // And the state agrees with the files: nothing left to do.
    expect(startedSteps(work.psy(['build']).stdout)).toEqual([]);
  });

  it('SIGKILL during builds that look only at changed cones: the next build equals a clean build', async () => {
    // Shell commands and files only, so builds after a finished one take the cone path
    // (cached graph, lazily read state log, patched snapshot).
    const n = 40;
    const files: Record<string, string> = {
      'build.config.ts': `import {appendFileSync} from 'node:fs';
appendFileSync(new URL('./evaluations.log', import.meta.url), 'x');
const name = (i: number) => 't' + i;
export default {targets: Array.from({length: ${n}}, (_, i) => ({
  name: name(i),
  inputs: {s: 'src/s' + i + '.txt', d: [i > 2 ? {target: name(i - 3)} : [], i > 6 ? {target: name((i * 7) % (i - 1))} : []].flat()},
  outputs: {o: name(i) + '.out'},
  command: 'cat $in | md5sum > $out; sleep 0.01',
}))};
`,
    };
    for (let i = 0; i < n; i++) files[`src/s${i}.txt`] = `source ${i}\n`;
    work.write(files);
    const rand = seeded(4242);
    const settle = () => new Promise((r) => setTimeout(r, 2100));
    expect(work.psy(['build', '-j2']).code).toBe(0);
    await settle();
    expect(work.psy(['build']).code).toBe(0);
    let builds = 2;
    let killedMidway = 0;
    for (let k = 0; k < 16; k++) {
      const i = Math.floor(rand() * n);
      appendFileSync(work.path(`src/s${i}.txt`), `edit ${k}\n`);
      if (rand() < 0.25) await settle();
      const run = work.spawnPsy(['build', '-j2']);
      builds++;
      if (rand() < 0.7) {
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 200)));
        if (run.child.exitCode === null) killedMidway++;
        run.child.kill('SIGKILL');
      }
      const r = await run.done;
      if (r.signal !== 'SIGKILL') expect(r.code, run.output()).toBe(0);
    }
    expect(killedMidway).toBeGreaterThanOrEqual(4);
    const finished = work.psy(['build', '-j2']);
    expect(finished.code, finished.stdout + finished.stderr).toBe(0);
    // Some of those builds answered from the cached graph, without evaluating the config.
    expect(readFileSync(work.path('evaluations.log'), 'utf8').length).toBeLessThan(builds + 1);
    const sources: Record<string, string> = {'build.config.ts': files['build.config.ts']!};
    for (let i = 0; i < n; i++) sources[`src/s${i}.txt`] = readFileSync(work.path(`src/s${i}.txt`), 'utf8');
    reference.write(sources);
    expect(reference.psy(['build', '-j2']).code).toBe(0);
    const got = snapshot(work.path('cache/out'));
    const want = snapshot(reference.path('cache/out'));
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    expect(got).toEqual(want);
    const last = work.psy(['build', '-v', '-j1']);
    if (startedSteps(last.stdout).length > 0) console.log(last.stdout.slice(0, 3000), last.stderr);
    expect(startedSteps(last.stdout)).toEqual([]);
    expect(existsSync(work.path('cache/config/noop-build.config.ts-default.graph'))).toBe(true);
  }, 120_000);
});
