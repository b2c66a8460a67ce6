import {existsSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {checkConfig, formatProblem} from '../src/engine/config-check.js';
import {analyze} from '../src/engine/graph.js';
import {loadedConfig, Rig} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
});
afterEach(() => rig.cleanup());

function config(body: string): Record<string, string> {
  return {'build.config.ts': `export default ${body};\n`, 'src/a.txt': 'a\n'};
}

/** The lines of a config error: exit 1, each line naming the command, no stack, nothing built. */
function problemLines(args: string[]): string[] {
  const r = rig.psy(args);
  expect(r.code, r.stdout + r.stderr).toBe(1);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  expect(existsSync(rig.path('cache/out'))).toBe(false);
  const lines = r.stderr.trimEnd().split('\n');
  for (const l of lines) expect(l.startsWith(`psy ${args[0]!}: build.config.ts: `)).toBe(true);
  return lines.map((l) => l.slice(`psy ${args[0]!}: build.config.ts: `.length));
}

describe('the config is validated as a whole when it is loaded', () => {
  it('reports every unknown key at once, with its target, field and a did-you-mean', () => {
    rig.write(
      config(`{
      defualt: 'a',
      targets: [
        {name: 'a', inptus: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'},
        {name: 'b', inputs: {s: 'src/a.txt'}, outputs: {o: 'b.txt'}, comand: 'cp $in $out', colour: 'red'},
      ],
    }`),
    );
    expect(problemLines(['build'])).toEqual([
      'field "defualt": unknown key (did you mean "default"?)',
      'target "a": field "inptus": unknown key (did you mean "inputs"?)',
      'target "b": field "comand": unknown key (did you mean "command"?)',
      'target "b": field "colour": unknown key',
    ]);
  });

  it('reports wrong types at load, before anything runs: a command array, a BigInt or a function parameter', () => {
    rig.write(
      config(`{targets: [
      {name: 'arr', outputs: {o: 'arr.txt'}, command: ['touch', '$out']},
      {name: 'big', outputs: {o: 'big.txt'}, command: 'touch $out', params: {size: 10n, nested: {f: () => 1, n: [1, NaN]}}},
      {name: 'shape', inputs: {s: {fiels: 'src/a.txt'}, t: 42}, outputs: {o: {dri: 'x'}}, command: 'true', tools: [{command: 'mksquashfs'}], pool: 3},
    ], pools: {big: 0}, sourceDateEpoch: '2024'}`),
    );
    expect(problemLines(['build'])).toEqual([
      'target "arr": field "command": must be a shell command string, got an array (join the words into one string)',
      'target "big": field "params.size": must be a JSON value, got a BigInt (10n)',
      'target "big": field "params.nested.f": must be a JSON value, got a function',
      'target "big": field "params.nested.n[1]": must be a JSON value; NaN is not one',
      'target "shape": field "pool": must be a pool name, got a number (3)',
      'target "shape": field "inputs.s": must be a path, {files}, {glob} or {target}; unknown key "fiels" (did you mean "files"?)',
      'target "shape": field "inputs.t": must be a path, {files}, {glob} or {target}, got a number (42)',
      'target "shape": field "outputs.o": must be a path, {file} or {dir}; unknown key "dri" (did you mean "dir"?)',
      'target "shape": field "tools[0].versionArgs": is missing (the arguments that make it print its version)',
      'field "pools.big": depth must be a positive integer, got 0',
      'field "sourceDateEpoch": must be a whole number of seconds ≥ 0, got a string ("2024")',
    ]);
  });

  it('commands that only read the graph report the same problems', () => {
    rig.write(config(`{targets: [{name: 'a', outputs: {o: 'a'}, command: 'touch $out', params: {n: 1n}}]}`));
    for (const cmd of ['targets', 'graph', 'explain', 'query']) {
      const args = cmd === 'explain' || cmd === 'query' ? [cmd, 'a'] : [cmd];
      expect(problemLines(args)).toEqual(['target "a": field "params.n": must be a JSON value, got a BigInt (1n)']);
    }
  });

  it('reports every problem of the graph at once too (unknown dependency, pool, duplicate output)', () => {
    rig.write(
      config(`{targets: [
      {name: 'a', inputs: {up: {target: 'bb'}}, outputs: {o: 'a'}, command: 'true', pool: 'bigg'},
      {name: 'b', outputs: {o: 'a'}, command: 'true'},
    ], pools: {big: 1}}`),
    );
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n')).toEqual([
      'psy build: target "a": unknown pool "bigg" (did you mean "big"?)',
      'psy build: output cache/out/a is declared by both "a" and "b"',
      'psy build: target "a": input "up" names unknown target "bb" (did you mean "b"?)',
    ]);
  });

  it('an absolute input that exists is read from where it is', () => {
    const outside = mkdtempSync(join(tmpdir(), 'psy-abs-input-'));
    try {
      writeFileSync(join(outside, 'kernel.config'), 'CONFIG_X=y\n');
      rig.write(
        config(`{targets: [{name: 'a', inputs: {k: ${JSON.stringify(join(outside, 'kernel.config'))}}, outputs: {o: 'a.txt'}, command: 'cp $in $out'}]}`),
      );
      const r = rig.psy(['build']);
      expect(r.code, r.stderr).toBe(0);
      expect(rig.read('cache/out/a.txt')).toBe('CONFIG_X=y\n');
      expect(rig.psy(['build']).stdout).toMatch(/no work to do/);
      // Its content is part of the key, as for any input.
      writeFileSync(join(outside, 'kernel.config'), 'CONFIG_X=n\n');
      expect(rig.psy(['explain', 'a']).stdout.trim()).toBe(`a: input ${join(outside, 'kernel.config')} changed`);
      expect(rig.psy(['build']).code).toBe(0);
      expect(rig.read('cache/out/a.txt')).toBe('CONFIG_X=n\n');
      rmSync(join(outside, 'kernel.config'));
      const gone = rig.psy(['build']);
      expect(gone.code).toBe(1);
      expect(gone.stderr.trim()).toBe(`psy build: target "a": input "k" file ${join(outside, 'kernel.config')} does not exist`);
    } finally {
      rmSync(outside, {recursive: true, force: true});
    }
  });
});

describe('checkConfig (exported for fuzzing) returns problems for any value, never throws', () => {
  it('odd values at the top and in targets', () => {
    const cyclic: Record<string, unknown> = {a: 1};
    cyclic['self'] = cyclic;
    const nested: unknown[] = [];
    nested.push(nested);
    const throwing = new Proxy(
      {},
      {
        ownKeys() {
          throw new Error('no keys for you');
        },
      },
    );
    const cases: Array<[unknown, string[]]> = [
      [null, ['the default export must be an object: defineConfig({targets: [...]})']],
      [42, ['the default export must be an object: defineConfig({targets: [...]})']],
      [{}, ['field "targets": is missing (a list of targets)']],
      [{targets: 'a'}, ['field "targets": must be an array of targets, got a string ("a")']],
      [{targets: [nested, 'x', null]}, ['targets[0]: is not a target object, got a string ("x")', 'targets[1]: is not a target object, got null']],
      [{targets: [{name: 'p', params: {c: cyclic}}]}, ['target "p": field "params.c.self": must be a JSON value; it refers to itself']],
      [
        {targets: [{name: 'd', params: {when: new Date(0), m: new Map()}}]},
        ['target "d": field "params.when": must be a JSON value, got a Date', 'target "d": field "params.m": must be a JSON value, got a Map'],
      ],
      [
        {targets: [{name: 's', description: Symbol('x'), outputs: {o: 1n}}]},
        [
          'target "s": field "description": must be a string, got a symbol',
          'target "s": field "outputs.o": must be a path, {file} or {dir}, got a BigInt (1n)',
        ],
      ],
      [{targets: [], settings: []}, ['field "settings": must be an object, got an array']],
      [throwing, ['cannot be read: no keys for you']],
      [{targets: throwing}, ['field "targets": must be an array of targets, got an object']],
      [{targets: [{name: 'x', inputs: throwing}]}, ['cannot be read: no keys for you']],
      [
        {
          targets: [
            {
              name: 'ok',
              inputs: {s: 'a', t: {target: 'ok', output: 'o'}, g: {glob: ['*.c']}},
              outputs: {o: 'o', d: {dir: 'd'}},
              command: 'true',
              params: {x: [1, 'a', null, {y: true}]},
            },
          ],
        },
        [],
      ],
    ];
    for (const [value, expected] of cases) {
      let lines: string[] = [];
      expect(() => (lines = checkConfig(value).map(formatProblem))).not.toThrow();
      expect(lines).toEqual(expected);
    }
  });
});

describe('analyze', () => {
  it('a target list that contains itself is walked once, and problems are PsyErrors', () => {
    const list: unknown[] = [{name: 'a', outputs: {o: 'a'}, command: 'true'}];
    list.push(list);
    expect(analyze(loadedConfig({targets: list})).targets.map((t) => t.name)).toEqual(['a']);
    expect(() => analyze(loadedConfig({targets: [{name: 'a', outputs: {o: 'a'}, command: 'true', params: {n: 1n}}]}))).toThrow(
      expect.objectContaining({
        name: 'PsyError',
        code: 'config-invalid',
        message: 'build.config.ts: target "a": field "params.n": must be a JSON value, got a BigInt (1n)',
      }),
    );
  });
});
