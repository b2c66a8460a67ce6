import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
  rig.write({
    'build.config.ts': `export default {targets: [
      {name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'},
      {name: 'b', inputs: {s: 'src/b.txt'}, outputs: {o: 'b.txt'}, command: 'cp $in $out'},
      {name: 'c', inputs: {a: {target: 'a'}}, outputs: {o: 'c.txt'}, command: 'cp $in $out'},
      {name: 'all', inputs: {c: {target: 'c'}, b: {target: 'b'}}},
    ]};\n`,
    'src/a.txt': 'a\n',
    'src/b.txt': 'b\n',
  });
});
afterEach(() => rig.cleanup());

interface Explanation {
  stale: boolean;
  chain: Array<{target: string; reason: string}>;
}

/** explain's chain and build -n's verdicts for one target, checked to agree. */
function both(target: string): {explain: Explanation; wouldRun: Map<string, string>} {
  const e = rig.psy(['explain', '--json', target]);
  expect(e.code, e.stderr).toBe(0);
  const d = rig.psy(['build', '-n', '--json', target]);
  expect(d.code, d.stderr).toBe(0);
  const explain = JSON.parse(e.stdout) as Explanation;
  const wouldRun = new Map((JSON.parse(d.stdout) as {wouldRun: Array<{target: string; reason: string}>}).wouldRun.map((w) => [w.target, w.reason]));
  // One authority: every step of the chain is build -n's own verdict, and a target is
  // stale for explain exactly when build -n would reach it.
  for (const step of explain.chain) expect(wouldRun.get(step.target)).toBe(step.reason);
  expect(explain.stale).toBe(wouldRun.has(target));
  return {explain, wouldRun};
}

describe("psy explain is the builder's dry run, for group targets too", () => {
  it('a group of never-built targets is stale, down to a root cause', () => {
    const {explain, wouldRun} = both('all');
    expect(explain.chain.map((s) => s.target)).toEqual(['all', 'c', 'a']);
    expect(explain.chain.at(-1)!.reason).toBe('never built');
    expect([...wouldRun.keys()].sort()).toEqual(['a', 'all', 'b', 'c']);
    const plain = rig.psy(['explain', 'all']);
    expect(plain.stdout).toBe('all: input target c will rebuild\n  c: input target a will rebuild\n    a: never built\n');
  });

  it('after one input changed, the group names the cone of that change', () => {
    expect(rig.psy(['build', 'all']).code).toBe(0);
    expect(both('all').explain.stale).toBe(false);
    expect(rig.psy(['explain', 'all']).stdout).toBe('all: up to date\n');
    expect(rig.psy(['build', '-n', 'all']).stdout).toBe('psy: no work to do\n');
    rig.write({'src/b.txt': 'b2\n'});
    const {explain, wouldRun} = both('all');
    expect(explain.chain).toEqual([
      {target: 'all', reason: 'input target b will rebuild'},
      {target: 'b', reason: 'input src/b.txt changed'},
    ]);
    expect([...wouldRun.keys()].sort()).toEqual(['all', 'b']);
    // The group's own line in build -n.
    expect(rig.psy(['build', '-n', 'all']).stdout).toBe('would run b: input src/b.txt changed\nwould run all: input target b will rebuild\n');
  });
});
