import {existsSync, readFileSync, writeFileSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {build} from '../src/engine/build.js';
import type {BuildEvent} from '../src/engine/events.js';
import {Rig, ruleModule} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
});
afterEach(() => rig.cleanup());

function ruleProject(): void {
  rig.write({
    'src/one.txt': 'one\n',
    'src/two.txt': 'two\n',
    'rules/record.ts': `import {defineRule} from '${ruleModule}';
import {writeFile, mkdir, readdir, stat} from 'node:fs/promises';
import {join} from 'node:path';
export const record = defineRule({
  name: 'record', version: 1, module: import.meta.url,
  tools: [{command: 'sh', versionArgs: ['-c', 'echo sh 1.0']}],
  async run(ctx) {
    const scratch = (await readdir(ctx.tmpDir)).length;
    const {stdout} = await ctx.run('sh', ['-c', 'cat "$@" | tr a-z A-Z', 'sh', ...ctx.inputs['texts']!], {captureStdout: true});
    ctx.log('converted ' + ctx.inputs['texts']!.length + ' files');
    await writeFile(ctx.outputs['report']!, JSON.stringify({
      target: ctx.target,
      inputs: ctx.inputs,
      params: ctx.params,
      epoch: ctx.sourceDateEpoch,
      scratchEmpty: scratch === 0,
      outputIsTemporary: !ctx.outputs['report']!.endsWith('cache/out/report.json'),
      upper: stdout.toString(),
    }));
    await mkdir(ctx.outputs['tree']!);
    await writeFile(join(ctx.outputs['tree']!, 'leaf'), 'leaf\\n');
  },
});
export const failing = defineRule({
  name: 'failing', version: 1, module: import.meta.url,
  async run(ctx) { await ctx.run('sh', ['-c', 'echo broken >&2; exit 4']); },
});
`,
    'build.config.ts': `import {record, failing} from './rules/record.js';
export default {sourceDateEpoch: 1234, targets: [
  {name: 'report', inputs: {texts: {glob: 'src/*.txt'}}, params: {mode: 'upper', n: [1, 2]}, outputs: {report: 'report.json', tree: {dir: 'tree'}}, rule: record},
  {name: 'broken', outputs: {o: 'never'}, rule: failing},
]};
`,
  });
}

describe('build() API', () => {
  it('runs rules with a full context and reports what ran and the output paths', async () => {
    ruleProject();
    const events: BuildEvent[] = [];
    const result = await build({cwd: rig.dir, targets: ['report'], jobs: 2, logger: {event: (e) => events.push(e)}});
    expect(result.ok).toBe(true);
    expect(result.ran).toEqual(['report']);
    expect(result.outputs).toEqual({report: {report: rig.path('cache/out/report.json'), tree: rig.path('cache/out/tree')}});
    const report = JSON.parse(readFileSync(result.outputs['report']!['report']!, 'utf8')) as Record<string, unknown>;
    expect(report).toEqual({
      target: 'report',
      inputs: {texts: [rig.path('src/one.txt'), rig.path('src/two.txt')]},
      params: {mode: 'upper', n: [1, 2]},
      epoch: 1234,
      scratchEmpty: true,
      outputIsTemporary: true,
      upper: 'ONE\nTWO\n',
    });
    expect(readFileSync(rig.path('cache/out/tree/leaf'), 'utf8')).toBe('leaf\n');
    expect(events.map((e) => e.type)).toEqual(['plan', 'start', 'finish']);
    const finish = events[2] as Extract<BuildEvent, {type: 'finish'}>;
    expect(finish.output).toBe('converted 2 files');

    const again = await build({cwd: rig.dir, targets: ['report']});
    expect(again.ran).toEqual([]);
    expect(again.upToDate).toEqual(['report']);
  });

  it('returns failures as values and never exits the process', async () => {
    ruleProject();
    const events: BuildEvent[] = [];
    const result = await build({cwd: rig.dir, targets: ['broken'], logger: {event: (e) => events.push(e)}});
    expect(result.ok).toBe(false);
    expect(result.failed).toEqual([{target: 'broken', message: 'sh -c echo broken >&2; exit 4: exit status 4 (broken)'}]);
    const fail = events.find((e) => e.type === 'fail') as Extract<BuildEvent, {type: 'fail'}>;
    expect(fail.action).toBe('rule failing');
    expect(fail.output).toContain('broken');
    expect(existsSync(rig.path('cache/out/never'))).toBe(false);
  });

  it("a rule can keep a tool's stderr out of the step log, which still shows it when the tool fails", async () => {
    rig.write({
      'rules/noisy.ts': `import {defineRule} from '${ruleModule}';
import {writeFile} from 'node:fs/promises';
export const noisy = defineRule({
  name: 'noisy', version: 1, module: import.meta.url,
  async run(ctx) {
    const {stderr} = await ctx.run('sh', ['-c', 'echo banner 1.0 >&2; echo ' + String(ctx.params['then'])], {captureStderr: true});
    ctx.log('read ' + stderr.toString().trim().toUpperCase());
    await ctx.run('sh', ['-c', 'echo notice >&2; exit ' + String(ctx.params['code'])], {captureStderr: true});
    await writeFile(ctx.outputs['o']!, 'done');
  },
});
`,
      'build.config.ts': `import {noisy} from './rules/noisy.js';
export default {targets: [
  {name: 'quiet', outputs: {o: 'quiet'}, params: {then: 'out', code: 0}, rule: noisy},
  {name: 'loud', outputs: {o: 'loud'}, params: {then: 'out', code: 3}, rule: noisy},
]};
`,
    });
    const events: BuildEvent[] = [];
    const result = await build({cwd: rig.dir, targets: ['quiet', 'loud'], jobs: 1, keepGoing: 0, logger: {event: (e) => events.push(e)}});
    expect(result.ran).toEqual(['quiet']);
    const finish = events.find((e) => e.type === 'finish' && e.target === 'quiet') as Extract<BuildEvent, {type: 'finish'}>;
    expect(finish.output).toBe('out\nread BANNER 1.0');
    const fail = events.find((e) => e.type === 'fail') as Extract<BuildEvent, {type: 'fail'}>;
    expect(fail.target).toBe('loud');
    expect(fail.output).toContain('notice');
    expect(fail.output).not.toContain('banner');
  });

  it('an abort signal interrupts the build and reports it', async () => {
    rig.write({'build.config.ts': `export default {targets: [{name: 'slow', outputs: {o: 'slow'}, command: 'sleep 30; touch $out'}]};\n`});
    const abort = new AbortController();
    const pending = build({
      cwd: rig.dir,
      signal: abort.signal,
      logger: {event: (e) => e.type === 'start' && setTimeout(() => abort.abort(), 100)},
    });
    const started = Date.now();
    const result = await pending;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.interrupted).toBe(true);
    expect(result.ok).toBe(false);
    expect(existsSync(rig.path('cache/out/slow'))).toBe(false);
    expect(existsSync(rig.path('cache/state/lock'))).toBe(false);
  });

  it('dry run lists what would run without running or locking', async () => {
    rig.write({
      'src/x': 'x\n',
      'build.config.ts': `export default {targets: [{name: 'x', inputs: {s: 'src/x'}, outputs: {o: 'x'}, command: 'cp $in $out'}]};\n`,
    });
    const dry = await build({cwd: rig.dir, dryRun: true});
    expect(dry.wouldRun).toEqual([{target: 'x', reason: 'never built'}]);
    expect(existsSync(rig.path('cache/out/x'))).toBe(false);
    await build({cwd: rig.dir});
    writeFileSync(rig.path('src/x'), 'changed\n');
    expect((await build({cwd: rig.dir, dryRun: true})).wouldRun).toEqual([{target: 'x', reason: 'input src/x changed'}]);
  });
});
