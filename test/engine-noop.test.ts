import {existsSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig, startedSteps} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
  rig.write({
    'src/a.txt': 'a\n',
    'src/b.txt': 'b\n',
    'names.json': '["a", "b"]',
    // The config counts its evaluations and reads its target list from a JSON file.
    'build.config.ts': `import {appendFileSync, readFileSync} from 'node:fs';
appendFileSync(new URL('./evaluations.log', import.meta.url), 'x');
const names = JSON.parse(readFileSync(new URL('./names.json', import.meta.url), 'utf8')) as string[];
export default {targets: names.map((n) => ({name: n, inputs: {s: 'src/' + n + '.txt'}, outputs: {o: n + '.out'}, command: 'cp $in $out'}))};
`,
  });
});
afterEach(() => rig.cleanup());

const evaluations = () => readFileSync(rig.path('evaluations.log'), 'utf8').length;
/** Let every file leave the racy window so a snapshot can be written. */
const settle = () => new Promise((r) => setTimeout(r, 2200));
const snapshot = () => rig.path('cache/config/noop-build.config.ts-default.snap');

describe('no-op fast path', () => {
  it('answers a no-op from stat data alone and falls back on any change', async () => {
    rig.psy(['build']);
    await settle();
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual([]);
    expect(existsSync(snapshot())).toBe(true);
    const before = evaluations();
    const fast = rig.psy(['build']);
    expect(fast.stdout).toBe('psy: no work to do (2 targets up to date)\n');
    expect(evaluations()).toBe(before);

    // An edited input: its cone is checked and rebuilt; only input files changed, so
    // the cached analysed graph stands in for the config (see engine-cone.test.ts).
    writeFileSync(rig.path('src/a.txt'), 'a2\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a']);
    expect(rig.read('cache/out/a.out')).toBe('a2\n');
    expect(evaluations()).toBe(before);

    // A file the config read while loading changed: the new target is seen.
    await settle();
    rig.psy(['build']);
    writeFileSync(rig.path('names.json'), '["a", "b", "c"]');
    rig.write({'src/c.txt': 'c\n'});
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['c']);

    // A deleted output.
    await settle();
    rig.psy(['build']);
    expect(rig.psy(['build']).stdout).toBe('psy: no work to do (3 targets up to date)\n');
    rmSync(rig.path('cache/out/b.out'));
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['b']);

    // psy clean changes the state log: the snapshot no longer applies.
    await settle();
    rig.psy(['build']);
    rig.psy(['clean', 'c']);
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['c']);
  }, 60_000);

  it('touching an input without changing it still runs nothing', async () => {
    rig.psy(['build']);
    await settle();
    rig.psy(['build']);
    const later = new Date(Date.now() + 10_000);
    const {utimesSync} = await import('node:fs');
    utimesSync(rig.path('src/b.txt'), later, later);
    const r = rig.psy(['build']);
    expect(startedSteps(r.stdout)).toEqual([]);
    expect(r.stdout).toBe('psy: no work to do (2 targets up to date)\n');
  }, 60_000);
});
