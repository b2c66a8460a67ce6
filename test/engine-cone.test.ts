import {readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {build} from '../src/engine/build.js';
import type {BuildEvent} from '../src/engine/events.js';
import {closure} from '../src/engine/graph.js';
import {CachedGraph, readCachedGraph, serializeGraph} from '../src/engine/graph-cache.js';
import {Rig, startedSteps} from './helpers/engine-rig.js';

// After a no-op snapshot, a build whose only differences are input or output files
// re-examines just the cones of those files. These tests check that it still decides
// by content, keeps early cutoff, and gives way to the full check whenever the config
// could evaluate differently.

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
const cachedGraph = () => rig.path('cache/config/noop-build.config.ts-default.graph');
const evaluations = () => readFileSync(rig.path('evaluations.log'), 'utf8').length;

/** Build until the snapshot says nothing needs a look (a pure no-op). */
async function snapshotted(): Promise<void> {
  rig.psy(['build']);
  await settle();
  rig.psy(['build']);
  expect(rig.psy(['build']).stdout).toBe('psy: no work to do (4 targets up to date)\n');
}

describe('changed-cone check', () => {
  it('rebuilds the cone of an edited input, with early cutoff', async () => {
    await snapshotted();
    const before = evaluations();
    writeFileSync(rig.path('src/a.txt'), 'x\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a', 'b', 'c']);
    expect(rig.read('cache/out/c.out')).toBe('x\n');
    // The cached analysed graph stood in for the config.
    expect(evaluations()).toBe(before);

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

  it('a cone build records the same action keys as a full check (targets keep their graph index)', async () => {
    await snapshotted();
    // The cone is c alone, reading b: in the sub-graph they are targets 1 and 0, not 2 and 1.
    writeFileSync(rig.path('cache/out/c.out'), 'tampered\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['c']);
    // The full check finds c's record made with the key it computes itself.
    const {rmSync} = await import('node:fs');
    rmSync(snapshot());
    const before = evaluations();
    const full = rig.psy(['build', '-v']);
    expect(evaluations()).toBe(before + 1);
    expect(startedSteps(full.stdout)).toEqual([]);
    // And early cutoff holds in a cone whose indices shift: b rebuilt to the same bytes.
    await snapshotted();
    writeFileSync(rig.path('cache/out/b.out'), 'tampered\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['b']);
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

  it('a damaged or mismatched cached graph falls back to evaluating the config', async () => {
    await snapshotted();
    const text = readFileSync(cachedGraph(), 'utf8');
    writeFileSync(cachedGraph(), text.slice(0, text.length >> 1));
    let before = evaluations();
    writeFileSync(rig.path('src/a.txt'), 'x\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a', 'b', 'c']);
    expect(evaluations()).toBe(before + 1);
    expect(rig.read('cache/out/c.out')).toBe('x\n');

    // Well-formed, but made for another snapshot: not used.
    await snapshotted();
    let bytes = readFileSync(cachedGraph()).toString('latin1');
    const id = /"id":"([^"]*)"/.exec(bytes)![1]!;
    // Same lengths, so every offset still holds: another id, and commands that fail.
    bytes = bytes.replace(`"id":"${id}"`, `"id":"${'x'.repeat(id.length)}"`);
    for (const c of ['cut -c1 $in > $out', 'cat $in > $out', 'cp $in $out']) bytes = bytes.split(`"c":"${c}"`).join(`"c":"${'false #'.padEnd(c.length, '_')}"`);
    writeFileSync(cachedGraph(), Buffer.from(bytes, 'latin1'));
    before = evaluations();
    writeFileSync(rig.path('src/d.txt'), 'd3\n');
    const r = rig.psy(['build']);
    expect(r.code).toBe(0);
    expect(startedSteps(r.stdout)).toEqual(['d']);
    expect(evaluations()).toBe(before + 1);

    // Indices pointing nowhere: not used.
    await snapshotted();
    bytes = readFileSync(cachedGraph()).toString('latin1');
    expect(bytes).toContain('"dp":[1]');
    writeFileSync(cachedGraph(), Buffer.from(bytes.replace(/"dp":\[\d\]/g, '"dp":[9]'), 'latin1'));
    before = evaluations();
    writeFileSync(rig.path('src/a.txt'), 'y\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a', 'b', 'c']);
    expect(rig.read('cache/out/c.out')).toBe('y\n');
    expect(evaluations()).toBe(before + 1);
  }, 60_000);

  it('a tool of a target outside the changed cone stays watched', async () => {
    const {chmodSync} = await import('node:fs');
    const tool = (version: string) => {
      rig.write({'bin/mytool': `#!/bin/sh\necho mytool ${version}\n`});
      chmodSync(rig.path('bin/mytool'), 0o755);
    };
    tool('1.0');
    const config = readFileSync(rig.path('build.config.ts'), 'utf8');
    writeFileSync(
      rig.path('build.config.ts'),
      config.replace(
        "outputs: {o: 'd.out'}, command: copy}",
        "outputs: {o: 'd.out'}, command: copy, tools: [{command: 'mytool', versionArgs: ['--version']}]}",
      ),
    );
    const env = {PATH: `${rig.path('bin')}:${process.env['PATH'] ?? ''}`};
    const build = () => startedSteps(rig.psy(['build'], env).stdout);
    build();
    await settle();
    build();
    expect(rig.psy(['build'], env).stdout).toBe('psy: no work to do (4 targets up to date)\n');
    // Cone builds that never look at d, then a snapshot written after them.
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

  it('the cached graph decodes to the analysed graph, whole or by cone', async () => {
    rig.write({
      'build.config.ts': `export default {
  pools: {slow: 1},
  default: 'all',
  targets: [
    {name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.out'}, command: 'cut -c1 $in > $out', description: 'cut a'},
    {name: 'b', inputs: {a: {target: 'a'}, d: 'src/d.txt'}, outputs: {o: 'b.out', p: 'b2.out'}, command: 'cat $in > $out_o; cp $in_d $out_p', pool: 'slow', params: {x: [1, 'y']}},
    {name: 'c', inputs: {b: {target: 'b', output: 'p'}}, outputs: {o: 'c.out'}, command: 'cp $in $out'},
    {name: 'all', inputs: {c: {target: 'c'}, a: {target: 'a'}}, outputs: {}},
    {name: 'lonely', inputs: {s: 'src/d.txt'}, outputs: {o: 'lonely.out'}, command: 'cp $in $out'},
  ],
};
`,
    });
    const r = await build({cwd: rig.dir, dryRun: true});
    const graph = r.graph!;
    const want = closure(graph, graph.defaults);
    const file = join(rig.dir, 'graph.bin');
    writeFileSync(file, serializeGraph(graph, 'the-id', want)!);
    const back = readCachedGraph(file, 'the-id', graph.loaded)!;
    const shape = (g: typeof graph) =>
      g.targets.map((t) => ({
        name: t.name,
        index: t.index,
        command: t.config.command,
        description: t.config.description,
        params: t.config.params,
        pool: t.pool,
        inputs: t.inputs,
        outputs: t.outputs,
        deps: t.deps,
        dependents: [...t.dependents].sort(),
        criticalPath: t.criticalPath,
      }));
    expect(shape(back)).toEqual(shape(graph));
    expect([back.outDir, back.stateDir, back.defaults, [...back.pools], back.sourceDateEpoch]).toEqual([
      graph.outDir,
      graph.stateDir,
      graph.defaults,
      [...graph.pools],
      graph.sourceDateEpoch,
    ]);
    expect(readCachedGraph(file, 'another-id', graph.loaded)).toBeUndefined();

    const cache = CachedGraph.open(file, 'the-id')!;
    const index = (name: string) => graph.byName.get(name)!.index;
    expect(cache.targetsOf('src/d.txt').sort()).toEqual([index('b'), index('lonely')].sort());
    expect(cache.targetsOf(graph.byName.get('b')!.outputs[1]!.path)).toEqual([index('b')]);
    expect(cache.targetsOf('src/nothing.txt')).toEqual([]);
    expect(graph.targets.map((t) => cache.wanted(t.index))).toEqual([true, true, true, true, false]);
    expect(graph.targets.map((t) => cache.isGroup(t.index))).toEqual([false, false, false, true, false]);
    expect(graph.targets.map((t) => cache.name(t.index))).toEqual(graph.targets.map((t) => t.name));
    // A cone: b and c with their inputs, a settled (no inputs), re-indexed.
    const part = cache.targets([index('a'), index('b'), index('c')], (i) => i !== index('a'));
    expect(part.map((t) => [t.name, t.index, t.deps])).toEqual([
      ['a', 0, []],
      ['b', 1, [0]],
      ['c', 2, [1]],
    ]);
    expect(part[0]!.inputs).toEqual([]);
    expect(part[2]!.inputs[0]!.items).toEqual([{kind: 'output', target: 1, output: 1}]);
    expect(part[0]!.dependents).toEqual([1]);
    // A cone whose inputs point outside the selection is refused.
    expect(() => cache.targets([index('c')], () => true)).toThrow(/damaged graph cache/);
  });

  it('a cone build reports every wanted target and its outputs, as a full build does', async () => {
    await snapshotted();
    writeFileSync(rig.path('src/d.txt'), 'dd\n');
    const events: BuildEvent[] = [];
    const r = await build({cwd: rig.dir, logger: {event: (e) => events.push(e)}});
    expect(r.graph).toBeUndefined();
    expect(r.ran).toEqual(['d']);
    expect([...r.upToDate].sort()).toEqual(['a', 'b', 'c']);
    expect(events.find((e) => e.type === 'plan')).toEqual({type: 'plan', total: 4});
    expect(
      events
        .filter((e) => e.type === 'fresh')
        .map((e) => (e as {target: string}).target)
        .sort(),
    ).toEqual(['a', 'b', 'c']);
    expect(r.outputs).toEqual(Object.fromEntries(['a', 'b', 'c', 'd'].map((n) => [n, {o: rig.path(`cache/out/${n}.out`)}])));
    expect(rig.read('cache/out/d.out')).toBe('dd\n');
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

  it('the snapshot a cone build patches equals the one a full check writes', async () => {
    /** The parts of a snapshot file (see noop-snapshot.ts for the layout). */
    const read = () => {
      const b = readFileSync(snapshot());
      const head = b.readUInt32LE(8);
      const result = b.readUInt32LE(12);
      const paths = b.readUInt32LE(16);
      const count = b.readUInt32LE(20);
      const statsAt = (24 + head + result + paths + 7) & ~7;
      const {graph, ...rest} = JSON.parse(b.toString('utf8', 24, 24 + head)) as {graph?: string};
      const r = JSON.parse(b.toString('utf8', 24 + head, 24 + head + result)) as {upToDate: string[]; outputs: unknown};
      return {
        graph,
        head: rest,
        upToDate: [...r.upToDate].sort(),
        outputs: r.outputs,
        paths: b
          .toString('utf8', 24 + head + result, 24 + head + result + paths)
          .split('\0')
          .slice(0, count),
        stats: Array.from({length: count * 4}, (_, k) => b.readDoubleLE(statsAt + 8 * k)),
      };
    };
    await snapshotted();
    writeFileSync(rig.path('src/a.txt'), 'x\n');
    await settle();
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a', 'b', 'c']);
    // The outputs were written during that build: their entries say "look again".
    expect(read().stats).toContain(-2);
    await settle();
    const before = evaluations();
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual([]);
    expect(evaluations()).toBe(before);
    const patched = read();
    expect(patched.stats).not.toContain(-2);
    expect(rig.psy(['build']).stdout).toBe('psy: no work to do (4 targets up to date)\n');
    // The same state checked in full, with the snapshot and the cached graph gone.
    const {rmSync} = await import('node:fs');
    rmSync(snapshot());
    rmSync(cachedGraph());
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual([]);
    expect(evaluations()).toBe(before + 1);
    const fresh = read();
    expect(fresh.graph).not.toBe(patched.graph);
    expect({...patched, graph: undefined}).toEqual({...fresh, graph: undefined});
  }, 60_000);

  it.each([
    ['the whole cached graph', false],
    ['evaluating the config when a record outside the cone is damaged', true],
  ])(
    'an upstream of the cone without a record of its outputs sends psy to %s',
    async (_, damage) => {
      await snapshotted();
      if (damage) {
        // d's record no longer parses (same length: every offset still holds).
        const g = readFileSync(cachedGraph()).toString('latin1');
        expect(g).toContain('{"n":"d",');
        writeFileSync(cachedGraph(), Buffer.from(g.replace('{"n":"d",', '{"n":"d";'), 'latin1'));
      }
      // Forget a's record, then make the snapshot vouch for the log as it is now.
      const {StateLog} = await import('../src/engine/state-log.js');
      const {initHash} = await import('../src/engine/hash.js');
      const {statSync} = await import('node:fs');
      await initHash();
      const log = StateLog.open(rig.path('cache/state'));
      log.forgetTarget('a');
      log.close();
      const st = statSync(rig.path('cache/state/log'));
      const b = readFileSync(snapshot());
      const [headLen, resultLen, pathsLen, count] = [8, 12, 16, 20].map((k) => b.readUInt32LE(k)) as [number, number, number, number];
      const head = JSON.parse(b.toString('utf8', 24, 24 + headLen)) as {log: number[]};
      const newHead = Buffer.from(JSON.stringify({...head, log: [st.size, st.mtimeMs, st.ino]}));
      const rest = b.subarray(24 + headLen, 24 + headLen + resultLen + pathsLen);
      const statsAt = (24 + newHead.length + rest.length + 7) & ~7;
      const out = Buffer.alloc(statsAt + count * 32);
      b.copy(out, 0, 0, 24);
      out.writeUInt32LE(newHead.length, 8);
      newHead.copy(out, 24);
      rest.copy(out, 24 + newHead.length);
      b.copy(out, statsAt, b.length - count * 32);
      writeFileSync(snapshot(), out);
      // b's output tampered with: the cone is b and c, reading a, which has no record now.
      writeFileSync(rig.path('cache/out/b.out'), 'tampered\n');
      const before = evaluations();
      expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a', 'b']);
      expect(rig.read('cache/out/b.out')).toBe('a\n');
      expect(evaluations()).toBe(damage ? before + 1 : before);
      expect(startedSteps(rig.psy(['build']).stdout)).toEqual([]);
    },
    60_000,
  );
});
