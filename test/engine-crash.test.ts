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
});
