import {readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig, startedSteps} from './helpers/engine-rig.js';

// After a no-op snapshot, a build whose only differences are input or output files
// takes the targets none of whose files changed as clean (evidence for the freshness
// authority). These tests check that it still decides by content, keeps early cutoff,
// and takes nothing as clean whenever the config could evaluate differently.

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
  rig.write({
    'src/a.txt': 'a\n',
    'src/d.txt': 'd\n',
    'steps.json': '{"b": "cat $in > $out"}',
    'targets.ts': `export const copy = 'cp $in $out';\n`,
    // a -> b -> c, and d on its own. a keeps only the first character of its source.
    'build.config.ts': `import {appendFileSync, readFileSync} from 'node:fs';
appendFileSync(new URL('./evaluations.log', import.meta.url), 'x');
import {copy} from './targets.ts';
const steps = JSON.parse(readFileSync(new URL('./steps.json', import.meta.url), 'utf8')) as {b: string};
export default {targets: [
  {name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.out'}, command: 'cut -c1 $in > $out'},
  {name: 'b', inputs: {a: {target: 'a'}}, outputs: {o: 'b.out'}, command: steps.b},
  {name: 'c', inputs: {b: {target: 'b'}}, outputs: {o: 'c.out'}, command: copy},
  {name: 'd', inputs: {s: 'src/d.txt'}, outputs: {o: 'd.out'}, command: copy},
]};
`,
  });
});
afterEach(() => rig.cleanup());

/** Let every file leave the racy window so a snapshot without re-checks can be written. */
const settle = () => new Promise((r) => setTimeout(r, 2200));
const snapshot = () => rig.path('cache/config/noop-build.config.ts-default.snap');
const evaluations = () => readFileSync(rig.path('evaluations.log'), 'utf8').length;

/** Build until the snapshot says nothing needs a look (a pure no-op). */
async function snapshotted(): Promise<void> {
  rig.psy(['build']);
  await settle();
  rig.psy(['build']);
  expect(rig.psy(['build']).stdout).toBe('psy: no work to do (4 targets up to date)\n');
}

describe('a build after the no-op check found changed files', () => {
  it('rebuilds the cone of an edited input, with early cutoff', async () => {
    await snapshotted();
    const before = evaluations();
    writeFileSync(rig.path('src/a.txt'), 'x\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a', 'b', 'c']);
    expect(rig.read('cache/out/c.out')).toBe('x\n');
    // The config is evaluated (the graph is not cached); the snapshot's stats are reused.
    expect(evaluations()).toBe(before + 1);

    await snapshotted();
    // Same first character: a runs, its output is byte-identical, b and c stay.
    writeFileSync(rig.path('src/a.txt'), 'xyz\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a']);
    expect(rig.psy(['build']).stdout).toContain('4 targets up to date');
  }, 60_000);

  it('re-examines files whose stats were racy, even same-size edits in the same second', async () => {
    await snapshotted();
    // Each build records stats taken right after the writes; none may be trusted.
    for (const ch of ['p', 'q', 'r', 's']) {
      writeFileSync(rig.path('src/a.txt'), `${ch}\n`);
      expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a', 'b', 'c']);
      expect(rig.read('cache/out/c.out')).toBe(`${ch}\n`);
    }
    writeFileSync(rig.path('src/d.txt'), 'D\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['d']);
    expect(rig.read('cache/out/d.out')).toBe('D\n');
  }, 60_000);

  it('rebuilds a target whose output was modified or deleted', async () => {
    await snapshotted();
    writeFileSync(rig.path('cache/out/b.out'), 'tampered\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['b']);
    expect(rig.read('cache/out/b.out')).toBe('a\n');
    await snapshotted();
    const {rmSync} = await import('node:fs');
    rmSync(rig.path('cache/out/d.out'));
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['d']);
  }, 60_000);

  it('gives way to the full check when the config file changes', async () => {
    await snapshotted();
    const config = readFileSync(rig.path('build.config.ts'), 'utf8');
    writeFileSync(rig.path('build.config.ts'), config.replace("'cut -c1 $in > $out'", "'cut -c1 $in > $out; true'"));
    writeFileSync(rig.path('src/d.txt'), 'd2\n');
    expect(startedSteps(rig.psy(['build']).stdout).sort()).toEqual(['a', 'd']);
  }, 60_000);

  it('gives way to the full check when a module the config imports changes', async () => {
    await snapshotted();
    writeFileSync(rig.path('targets.ts'), `export const copy = 'cat $in > $out';\n`);
    writeFileSync(rig.path('src/d.txt'), 'd2\n');
    expect(startedSteps(rig.psy(['build']).stdout).sort()).toEqual(['c', 'd']);
  }, 60_000);

  it('gives way to the full check when a file the config reads changes', async () => {
    await snapshotted();
    writeFileSync(rig.path('steps.json'), '{"b": "cat $in $in > $out"}');
    writeFileSync(rig.path('src/d.txt'), 'd2\n');
    expect(startedSteps(rig.psy(['build']).stdout).sort()).toEqual(['b', 'c', 'd']);
    expect(rig.read('cache/out/c.out')).toBe('a\na\n');
  }, 60_000);

  it('a tool of a target taken as clean stays watched', async () => {
    const {chmodSync} = await import('node:fs');
    const tool = (version: string) => {
      rig.write({'bin/mytool': `#!/bin/sh\necho mytool ${version}\n`});
      chmodSync(rig.path('bin/mytool'), 0o755);
    };
    tool('1.0');
    const config = readFileSync(rig.path('build.config.ts'), 'utf8');
    writeFileSync(
      rig.path('build.config.ts'),
      config.replace("outputs: {o: 'd.out'}, command: copy}", "outputs: {o: 'd.out'}, command: copy, tools: [{command: 'mytool', versionArgs: ['--version']}]}"),
    );
    const env = {PATH: `${rig.path('bin')}:${process.env['PATH'] ?? ''}`};
    const build = () => startedSteps(rig.psy(['build'], env).stdout);
    build();
    await settle();
    build();
    expect(rig.psy(['build'], env).stdout).toBe('psy: no work to do (4 targets up to date)\n');
    // Builds that take d as clean (never asking for its tool), then a snapshot written after them.
    writeFileSync(rig.path('src/a.txt'), 'k\n');
    expect(build()).toEqual(['a', 'b', 'c']);
    await settle();
    expect(build()).toEqual([]);
    expect(rig.psy(['build'], env).stdout).toBe('psy: no work to do (4 targets up to date)\n');
    tool('2.0');
    expect(build()).toEqual(['d']);
  }, 60_000);

  it('a corrupted or truncated snapshot falls back to the full check', async () => {
    await snapshotted();
    const bytes = readFileSync(snapshot());
    writeFileSync(snapshot(), bytes.subarray(0, bytes.length >> 1));
    writeFileSync(rig.path('src/d.txt'), 'd2\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['d']);
    await snapshotted();
    // Well-formed, with the stats of another world: the paths' stats never match, and
    // content decides. (Layout: see noop-snapshot.ts.)
    const s = readFileSync(snapshot());
    const statsAt = (24 + s.readUInt32LE(8) + s.readUInt32LE(12) + s.readUInt32LE(16) + 7) & ~7;
    expect(s.length - statsAt).toBe(s.readUInt32LE(20) * 32);
    for (let at = statsAt; at < s.length; at += 8) s.writeDoubleLE(1, at);
    writeFileSync(snapshot(), s);
    writeFileSync(rig.path('src/a.txt'), 'z\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a', 'b', 'c']);
    expect(rig.read('cache/out/c.out')).toBe('z\n');
  }, 60_000);

  it('a snapshot whose target list is damaged answers no no-op: the full check does', async () => {
    await snapshotted();
    expect(rig.psy(['build']).stdout).toBe('psy: no work to do (4 targets up to date)\n');
    // The result part (target names and outputs) is read only when asked for.
    const s = readFileSync(snapshot());
    const resultAt = 24 + s.readUInt32LE(8);
    s.fill('#', resultAt, resultAt + s.readUInt32LE(12));
    writeFileSync(snapshot(), s);
    const before = evaluations();
    const json = rig.psy(['build', '--json']);
    expect(json.code).toBe(0);
    const r = JSON.parse(json.stdout) as {ok: boolean; ran: string[]; upToDate: string[]};
    expect({ok: r.ok, ran: r.ran, upToDate: [...r.upToDate].sort()}).toEqual({ok: true, ran: [], upToDate: ['a', 'b', 'c', 'd']});
    expect(evaluations()).toBe(before + 1);
    // The full check wrote a sound snapshot again.
    await settle();
    rig.psy(['build']);
    const again = JSON.parse(rig.psy(['build', '--json']).stdout) as {upToDate: string[]};
    expect(again.upToDate.length).toBe(4);
    expect(evaluations()).toBe(before + 1);
  }, 60_000);

});
