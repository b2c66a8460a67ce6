import {spawnSync} from 'node:child_process';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {loadConfig} from '../src/engine/load-config.js';
import {configModule, errorsModule, Rig, ruleModule, startedSteps} from './helpers/engine-rig.js';
import {repoRoot} from './helpers/shared-data.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
});
afterEach(() => rig.cleanup());

function project(): void {
  rig.write({
    'src/base.txt': 'base\n',
    'build.config.ts': `import {defineConfig} from '${configModule}';
import {kernelTargets} from './targets/kernel.js';
import {squash} from './rules/squash';

interface Flavour { name: string; level: number }
const flavours: Flavour[] = [{name: 'lts', level: 1}, {name: 'virt', level: 2}];

export default defineConfig({
  default: ['image'],
  settings: {deaddrop: {bucket: 'psyops-test', region: 'eu-west-1'}},
  targets: [
    kernelTargets(flavours.map((f) => f.name)),
    {name: 'image', inputs: {k: flavours.map((f) => ({target: 'kernel-' + f.name}))}, outputs: {img: 'image.bin'}, rule: squash, params: {level: 5}},
  ],
});
`,
    'targets/kernel.ts': `import type {TargetConfig} from '${configModule}';
export function kernelTargets(names: readonly string[]): TargetConfig[] {
  return names.map((n): TargetConfig => ({
    name: 'kernel-' + n,
    inputs: {base: 'src/base.txt'},
    outputs: {vmlinuz: 'kernel/' + n + '.vmlinuz'},
    command: 'echo ' + n + ' | cat $in - > $out',
  }));
}
`,
    'rules/squash.ts': `import {defineRule} from '${ruleModule}';
import {writeFile, readFile} from 'node:fs/promises';
import {joinAll} from './lib/join.js';
export const squash = defineRule({
  name: 'squash', version: 1, module: import.meta.url,
  async run(ctx) {
    const parts = await Promise.all(ctx.inputs['k']!.map((p) => readFile(p, 'utf8')));
    await writeFile(ctx.outputs['img']!, joinAll(parts) + 'level ' + String(ctx.params['level']) + '\\n');
  },
});
`,
    'rules/lib/join.ts': `export const joinAll = (parts: string[]): string => parts.join('');\n`,
  });
}

describe('config loading', () => {
  it('loads TypeScript config, targets/ and rules/ modules, generated and nested targets, settings', async () => {
    project();
    const loaded = await loadConfig({cwd: rig.dir});
    expect(loaded.root).toBe(rig.dir);
    expect(loaded.configPath).toBe(rig.path('build.config.ts'));
    expect(loaded.config.settings).toEqual({deaddrop: {bucket: 'psyops-test', region: 'eu-west-1'}});
    expect([...loaded.modules].sort()).toEqual(
      [
        rig.path('build.config.ts'),
        rig.path('rules/lib/join.ts'),
        rig.path('rules/squash.ts'),
        rig.path('targets/kernel.ts'),
        join(repoRoot, 'src/engine/config.ts'),
        join(repoRoot, 'src/engine/rule.ts'),
        join(repoRoot, 'src/errors.ts'),
      ].sort(),
    );
    const r = rig.psy(['build', '-j1']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const steps = startedSteps(r.stdout);
    expect(steps.slice(0, 2).sort()).toEqual(['kernel-lts', 'kernel-virt']);
    expect(steps[2]).toBe('image');
    expect(rig.read('cache/out/image.bin')).toBe('base\nlts\nbase\nvirt\nlevel 5\n');
  });

  it('a rule sees its own source path as import.meta.url', async () => {
    project();
    const loaded = await loadConfig({cwd: rig.dir});
    const image = (loaded.config.targets as unknown[]).flat().find((t) => (t as {name: string}).name === 'image') as {rule: {module: string}};
    expect(image.rule.module).toBe(pathToFileURL(rig.path('rules/squash.ts')).href);
  });

  it('rule identity covers the rule module and its transitive local imports only', async () => {
    project();
    const first = await loadConfig({cwd: rig.dir});
    const idRule = first.moduleIdentity(rig.path('rules/squash.ts'));
    expect(idRule).toMatch(/^[0-9a-f]{16}$/);
    rig.write({'targets/kernel.ts': rig.read('targets/kernel.ts') + '\n// unrelated edit\n'});
    const second = await loadConfig({cwd: rig.dir});
    expect(second.moduleIdentity(rig.path('rules/squash.ts'))).toBe(idRule);
    rig.write({'rules/lib/join.ts': `export const joinAll = (parts: string[]): string => parts.join('|');\n`});
    const third = await loadConfig({cwd: rig.dir});
    expect(third.moduleIdentity(rig.path('rules/squash.ts'))).not.toBe(idRule);
  });

  it('a second load reuses the compiled cache and does not load @swc/core', () => {
    project();
    const probe = `import {loadConfig} from ${JSON.stringify(pathToFileURL(join(repoRoot, 'dist/engine/load-config.js')).href)};
import mod from 'node:module';
const c = await loadConfig({cwd: process.argv[1]});
const swc = Object.keys(mod._cache).some((k) => k.includes('@swc'));
console.log(JSON.stringify({swc, targets: c.config.targets.flat().length}));
`;
    const run = () => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe, rig.dir], {encoding: 'utf8', cwd: repoRoot});
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as {swc: boolean; targets: number};
    };
    expect(run()).toEqual({swc: true, targets: 3});
    expect(run()).toEqual({swc: false, targets: 3});
    // An edited module is seen (and compiled again).
    rig.write({'targets/kernel.ts': rig.read('targets/kernel.ts').replace("'kernel-' + n,", "'k-' + n,").replace("target: 'kernel-'", "target: 'k-'")});
    rig.write({'build.config.ts': rig.read('build.config.ts').replace("target: 'kernel-'", "target: 'k-'")});
    expect(run()).toEqual({swc: true, targets: 3});
  });

  it('a rule may throw PsyError from a separately loaded errors module: one line, no stack', () => {
    rig.write({
      'build.config.ts': `import {picky} from './rules/picky.js';\nexport default {targets: [{name: 'p', outputs: {o: 'p'}, rule: picky}]};\n`,
      'rules/picky.ts': `import {defineRule} from '${ruleModule}';
import {PsyError} from '${errorsModule}';
export const picky = defineRule({name: 'picky', version: 1, module: import.meta.url, async run() {
  throw new PsyError('bad-param', 'params.size must be a multiple of 512');
}});
`,
    });
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: p: params.size must be a multiple of 512\n');
    expect(r.stdout).not.toMatch(/\bat \S+ \(/);
  });

  it('a config that throws while loading is a one-line error naming the config', () => {
    rig.write({
      'build.config.ts': `const list: string[] = [];\nif (list.length === 0) throw new Error('no targets configured');\nexport default {targets: list};\n`,
    });
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('psy build: build.config.ts: no targets configured\n');
  });

  it('a config without a default export of targets is rejected', () => {
    rig.write({'build.config.ts': `export const targets = [];\n`});
    const r = rig.psy(['build']);
    expect(r.stderr).toBe('psy build: build.config.ts: the default export must be defineConfig({targets: [...]})\n');
  });
});
