import {spawnSync} from 'node:child_process';
import {mkdirSync, symlinkSync} from 'node:fs';
import {join} from 'node:path';
import {afterEach, describe, expect, it} from 'vitest';
import {Rig} from './helpers/engine-rig.js';
import {repoRoot} from './helpers/shared-data.js';

// A rule declares what it reads and writes; targets are checked against it by tsc (a
// TypeScript config) and when the config loads (a plain JavaScript one). Each project
// here depends on psy the way a user's does: node_modules/psy and `psy/config`.

let rig: Rig;
afterEach(() => rig?.cleanup());

function dependentProject(files: Record<string, string>): Rig {
  rig = new Rig();
  mkdirSync(rig.path('node_modules'));
  symlinkSync(repoRoot, rig.path('node_modules/psy'));
  rig.write({'package.json': '{"type": "module", "dependencies": {"psy": "*"}}\n', ...files});
  return rig;
}

const catRule = (ext: string) => `import {readFileSync, writeFileSync} from 'node:fs';
import {defineRule, param} from 'psy/config';

export default defineRule({
  name: 'cat',
  version: 1,
  module: import.meta.url,
  inputs: {patch: 'file', extra: 'files?'},
  params: {times: 'number', label: 'string?', opts: param${ext === 'ts' ? '<{upper: boolean}>' : ''}()},
  outputs: {out: 'file'},
  async run(ctx) {
    let text = readFileSync(ctx.inputs.patch, 'utf8').repeat(ctx.params.times);
    for (const f of ctx.inputs.extra) text += readFileSync(f, 'utf8');
    if (ctx.params.opts.upper) text = text.toUpperCase();
    writeFileSync(ctx.outputs.out, (ctx.params.label ?? '') + text);
  },
});
`;

/** One target of the cat rule; `inputs`, `params` and `outputs` as written in the config. */
const config = (ext: string, target: string) => `import {defineConfig, defineTarget} from 'psy/config';
import cat from './rules/cat.${ext === 'ts' ? 'js' : 'mjs'}';

export default defineConfig({targets: [defineTarget({name: 't', rule: cat, ${target}})]});
`;

const good = `inputs: {patch: 'a.txt'}, params: {times: 2, opts: {upper: true}}, outputs: {out: 'o.txt'}`;

function tsc(dir: string) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '--noEmit', '-p', '.'], {cwd: dir, encoding: 'utf8'});
  return {code: r.status, out: r.stdout + r.stderr};
}

const tsconfig = JSON.stringify({
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    types: ['node'],
    typeRoots: [join(repoRoot, 'node_modules/@types')],
    skipLibCheck: true,
    noEmit: true,
  },
  include: ['build.config.ts', 'rules'],
});

describe('typed rule contracts under tsc', () => {
  it('accepts a target that matches the contract, and types ctx.inputs in the rule', () => {
    dependentProject({'tsconfig.json': tsconfig, 'rules/cat.ts': catRule('ts'), 'build.config.ts': config('ts', good)});
    const r = tsc(rig.dir);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it.each([
    [
      'a misspelt input',
      `inputs: {pach: 'a.txt'}, params: {times: 2, opts: {upper: true}}, outputs: {out: 'o.txt'}`,
      /'pach' does not exist in type 'TargetInputs<.*Did you mean to write 'patch'\?/s,
    ],
    ['a missing input', `inputs: {extra: 'a.txt'}, params: {times: 2, opts: {upper: true}}, outputs: {out: 'o.txt'}`, /Property 'patch' is missing/],
    [
      'a param of the wrong type',
      `inputs: {patch: 'a.txt'}, params: {times: '2', opts: {upper: true}}, outputs: {out: 'o.txt'}`,
      /Type 'string' is not assignable to type 'number'/,
    ],
    [
      'a typed param of the wrong shape',
      `inputs: {patch: 'a.txt'}, params: {times: 2, opts: {upper: 'yes'}}, outputs: {out: 'o.txt'}`,
      /Type 'string' is not assignable to type 'boolean'/,
    ],
    [
      'an undeclared output',
      `inputs: {patch: 'a.txt'}, params: {times: 2, opts: {upper: true}}, outputs: {out: 'o.txt', log: 'l.txt'}`,
      /'log' does not exist in type 'TargetOutputs</,
    ],
  ])('refuses %s', (_what, target, error) => {
    dependentProject({'tsconfig.json': tsconfig, 'rules/cat.ts': catRule('ts'), 'build.config.ts': config('ts', target)});
    const r = tsc(rig.dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/^build\.config\.ts\(4,\d+\): error TS/);
    expect(r.out).toMatch(error);
  });

  it('refuses an input the rule does not declare, read inside the rule', () => {
    const rule = catRule('ts').replace('ctx.inputs.extra)', 'ctx.inputs.extras)');
    dependentProject({'tsconfig.json': tsconfig, 'rules/cat.ts': rule, 'build.config.ts': config('ts', good)});
    const r = tsc(rig.dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/rules\/cat\.ts\(\d+,\d+\): error TS2551: Property 'extras' does not exist .*Did you mean 'extra'\?/);
  });
});

describe('typed rule contracts at load time (a plain JavaScript config)', () => {
  const js = (target: string, extra: Record<string, string> = {}) =>
    dependentProject({'rules/cat.mjs': catRule('js'), 'build.config.mjs': config('js', target), 'a.txt': 'ab', 'b.txt': 'c', ...extra});

  it('builds a target that matches the contract; the rule reads its typed context', () => {
    js(`inputs: {patch: 'a.txt', extra: ['b.txt']}, params: {times: 2, label: '>', opts: {upper: true}}, outputs: {out: 'o.txt'}`);
    const r = rig.psy(['build']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(rig.read('cache/out/o.txt')).toBe('>ABABC');
  });

  it.each([
    [
      'a misspelt input',
      `inputs: {pach: 'a.txt'}, params: {times: 2, opts: {}}, outputs: {out: 'o.txt'}`,
      'target "t": field "inputs.pach": rule "cat" has no input "pach" (did you mean "patch"?)\npsy build: build.config.mjs: target "t": field "inputs.patch": is missing (rule "cat" reads it)',
    ],
    [
      'a param of the wrong type',
      `inputs: {patch: 'a.txt'}, params: {times: '2', opts: {}}, outputs: {out: 'o.txt'}`,
      'target "t": field "params.times": must be a number (rule "cat"), got a string ("2")',
    ],
    [
      'a missing param',
      `inputs: {patch: 'a.txt'}, params: {times: 2}, outputs: {out: 'o.txt'}`,
      'target "t": field "params.opts": is missing (rule "cat" reads it)',
    ],
    [
      'an unknown output',
      `inputs: {patch: 'a.txt'}, params: {times: 2, opts: {}}, outputs: {out: 'o.txt', log: 'l.txt'}`,
      'target "t": field "outputs.log": rule "cat" has no output "log"',
    ],
  ])('refuses %s in one line per problem, naming the target and the field', (_what, target, message) => {
    js(target);
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`psy build: build.config.mjs: ${message}\n`);
    expect(r.stdout).not.toMatch(/\[1\/1\]/);
  });

  it("refuses a 'file' input that resolves to several paths when the step runs", () => {
    js(`inputs: {patch: {glob: '*.txt'}}, params: {times: 1, opts: {}}, outputs: {out: 'o.txt'}`);
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain('target "t": input "patch" of rule "cat" must be one path, got 2');
    expect(r.stdout + r.stderr).not.toMatch(/^\s+at /m);
  });
});

describe('psy/config, the package export', () => {
  it("resolves for the repository's own build.config.ts (the package refers to itself)", () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin/psy.js'), 'targets'], {cwd: repoRoot, encoding: 'utf8'});
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\* diskimg\s+the GPT disk image/m);
  });
});
