import {existsSync, writeFileSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig, startedSteps} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
  rig.write({
    'src/a.txt': 'a\n',
    'src/b.txt': 'b\n',
    'build.config.ts': `export default {
  default: 'all',
  targets: [
    {name: 'a', description: 'copy a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'},
    {name: 'b', inputs: {s: 'src/b.txt', up: {target: 'a'}}, params: {level: 9}, outputs: {o: 'b.txt'}, command: 'cat $in > $out'},
    {name: 'all', inputs: {b: {target: 'b'}}},
    {name: 'extra', inputs: {s: 'src/b.txt'}, outputs: {o: 'extra.txt'}, command: 'cp $in $out'},
  ],
};
`,
  });
});
afterEach(() => rig.cleanup());

describe('psy build targets and defaults', () => {
  it('builds the default target and its dependencies only', () => {
    const r = rig.psy(['build', '-j1']);
    expect(startedSteps(r.stdout)).toEqual(['a', 'b']);
    expect(existsSync(rig.path('cache/out/extra.txt'))).toBe(false);
    expect(startedSteps(rig.psy(['build', 'extra']).stdout)).toEqual(['extra']);
  });

  it('--json prints the result with output paths', () => {
    const r = rig.psy(['build', '--json', 'b']);
    const res = JSON.parse(r.stdout) as {ok: boolean; ran: string[]; outputs: Record<string, Record<string, string>>};
    expect(res.ok).toBe(true);
    expect(res.ran.sort()).toEqual(['a', 'b']);
    expect(res.outputs['b']).toEqual({o: rig.path('cache/out/b.txt')});
  });

  it('--config builds another config file', () => {
    rig.write({'other/psy.config.ts': `export default {targets: [{name: 'o', outputs: {x: 'x.txt'}, command: 'echo other > $out'}]};\n`});
    const r = rig.psy(['build', '--config', 'other/psy.config.ts']);
    expect(r.code).toBe(0);
    expect(rig.read('other/cache/out/x.txt')).toBe('other\n');
  });
});

describe('psy explain', () => {
  it('names the first reason, follows stale upstreams, says up to date', () => {
    expect(rig.psy(['explain', 'b']).stdout).toBe('b: input target a will rebuild\n  a: never built\n');
    rig.psy(['build']);
    expect(rig.psy(['explain', 'b']).stdout).toBe('b: up to date\n');
    writeFileSync(rig.path('src/b.txt'), 'B\n');
    expect(rig.psy(['explain', 'b']).stdout).toBe('b: input src/b.txt changed\n');
    const json = JSON.parse(rig.psy(['explain', '--json', 'b']).stdout) as {stale: boolean; chain: unknown[]};
    expect(json).toEqual({target: 'b', stale: true, chain: [{target: 'b', reason: 'input src/b.txt changed'}]});
  });

  it('rejects an unknown target in one line', () => {
    const r = rig.psy(['explain', 'nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('psy explain: unknown target "nope" (see psy targets)\n');
  });
});

describe('psy targets, query, graph', () => {
  it('targets lists names, marks defaults, describes', () => {
    const r = rig.psy(['targets']);
    expect(r.stdout).toBe('  a      copy a\n  b\n* all\n  extra\n');
    const json = JSON.parse(rig.psy(['targets', '--json']).stdout) as Array<{name: string; default: boolean}>;
    expect(json.map((t) => [t.name, t.default])).toEqual([
      ['a', false],
      ['b', false],
      ['all', true],
      ['extra', false],
    ]);
  });

  it('query shows inputs, params, outputs, key and last run', () => {
    let r = rig.psy(['query', 'b']);
    expect(r.stdout).toContain('  command: cat $in > $out');
    expect(r.stdout).toContain('    s: src/b.txt');
    expect(r.stdout).toContain('    up: cache/out/a.txt');
    expect(r.stdout).toContain('    level: 9');
    expect(r.stdout).toContain('  last run: never');
    rig.psy(['build', 'b']);
    r = rig.psy(['query', '--json', 'b']);
    const info = JSON.parse(r.stdout) as {deps: string[]; dependents: string[]; lastRun: {key: string; outputs: Array<{path: string}>}; stale: string | null};
    expect(info.deps).toEqual(['a']);
    expect(info.dependents).toEqual(['all']);
    expect(info.lastRun.key).toMatch(/^[0-9a-f]{16}$/);
    expect(info.lastRun.outputs[0]!.path).toBe('cache/out/b.txt');
    expect(info.stale ?? null).toBeNull();
  });

  it('graph prints dot and json', () => {
    const dot = rig.psy(['graph']).stdout;
    expect(dot).toMatch(/^digraph psy \{/);
    expect(dot).toContain('"a" -> "b";');
    expect(dot).toContain('"b" -> "all";');
    const json = JSON.parse(rig.psy(['graph', '--format', 'json', 'b']).stdout) as {targets: Array<{name: string; deps: string[]}>};
    expect(json.targets.map((t) => [t.name, t.deps])).toEqual([
      ['a', []],
      ['b', ['a']],
    ]);
    const bad = rig.psy(['graph', '--format', 'svg']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('psy graph: --format must be dot or json, got "svg"\n');
  });
});

describe('psy clean', () => {
  it('removes the named target outputs and forgets them', () => {
    rig.psy(['build']);
    const r = rig.psy(['clean', 'a']);
    expect(r.stdout).toBe('psy clean: removed 1 output\n');
    expect(existsSync(rig.path('cache/out/a.txt'))).toBe(false);
    expect(existsSync(rig.path('cache/out/b.txt'))).toBe(true);
    expect(rig.psy(['explain', 'a']).stdout).toBe('a: never built\n');
    // a rebuilds to the same bytes: b stays up to date.
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['a']);
  });

  it('without targets removes everything', () => {
    rig.psy(['build', 'all', 'extra']);
    const r = rig.psy(['clean', '--json']);
    expect(JSON.parse(r.stdout)).toEqual({removed: ['cache/out/a.txt', 'cache/out/b.txt', 'cache/out/extra.txt']});
    expect(existsSync(rig.path('cache/out/extra.txt'))).toBe(false);
  });
});

describe('--help', () => {
  for (const cmd of ['build', 'explain', 'targets', 'query', 'graph', 'clean']) {
    it(`psy ${cmd} --help prints usage`, () => {
      const r = rig.psy([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: psy ${cmd}`));
    });
  }

  it('psy --help lists the engine commands', () => {
    const r = rig.psy(['--help']);
    for (const cmd of ['build', 'explain', 'targets', 'query', 'graph', 'clean']) expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
  });
});
