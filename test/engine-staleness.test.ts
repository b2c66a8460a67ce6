import {chmodSync, rmSync, utimesSync, writeFileSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig, ruleModule, startedSteps} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
});
afterEach(() => rig.cleanup());

/**
 * src/a.txt → A (copy) → B (normalise: lower-case, so different inputs can give the
 * same bytes) → C (md5 of B plus src/c.txt). D depends on src/d.txt only.
 */
function chain(extra: Record<string, string> = {}): void {
  rig.write({
    'src/a.txt': 'Hello\n',
    'src/c.txt': 'c\n',
    'src/d.txt': 'd\n',
    'build.config.ts': `export default {targets: [
  {name: 'A', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'},
  {name: 'B', inputs: {a: {target: 'A'}}, outputs: {o: 'b.txt'}, command: 'tr A-Z a-z < $in > $out'},
  {name: 'C', inputs: {b: {target: 'B'}, c: 'src/c.txt'}, outputs: {o: 'c.txt'}, command: 'cat $in | md5sum > $out'},
  {name: 'D', inputs: {d: 'src/d.txt'}, outputs: {o: 'd.txt'}, command: 'cp $in $out'},
]};
`,
    ...extra,
  });
}

describe('staleness', () => {
  it('full build runs everything, a no-op runs nothing', () => {
    chain();
    expect(startedSteps(rig.psy(['build', '-j1']).stdout).sort()).toEqual(['A', 'B', 'C', 'D']);
    expect(rig.read('cache/out/b.txt')).toBe('hello\n');
    const again = rig.psy(['build']);
    expect(again.code).toBe(0);
    expect(startedSteps(again.stdout)).toEqual([]);
    expect(again.stdout).toContain('psy: no work to do (4 targets up to date)');
  });

  it('touching an input without changing it runs no command', () => {
    chain();
    rig.psy(['build']);
    const later = new Date(Date.now() + 5000);
    utimesSync(rig.path('src/a.txt'), later, later);
    utimesSync(rig.path('src/c.txt'), later, later);
    const r = rig.psy(['build']);
    expect(startedSteps(r.stdout)).toEqual([]);
  });

  it('an edit rebuilds only its cone', () => {
    chain();
    rig.psy(['build']);
    writeFileSync(rig.path('src/c.txt'), 'c changed\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['C']);
    writeFileSync(rig.path('src/d.txt'), 'd changed\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['D']);
  });

  it('early cutoff: an upstream that rebuilds to the same bytes stops the rebuild there', () => {
    chain();
    rig.psy(['build']);
    // A's output changes (HELLO), B's does not (still hello): C must not run.
    writeFileSync(rig.path('src/a.txt'), 'HELLO\n');
    const r = rig.psy(['build', '-j1']);
    expect(startedSteps(r.stdout)).toEqual(['A', 'B']);
    expect(rig.read('cache/out/a.txt')).toBe('HELLO\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual([]);
  });

  it('a same-size edit right after a build is not missed (racy timestamps)', () => {
    chain();
    rig.psy(['build']);
    // Same size, written within the same second as the recorded stat.
    writeFileSync(rig.path('src/d.txt'), 'e\n');
    const st = rig.path('src/d.txt');
    utimesSync(st, new Date(), new Date());
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['D']);
    expect(rig.read('cache/out/d.txt')).toBe('e\n');
  });

  it('a same-size edit that keeps mtime is caught while the stat is racy', () => {
    chain();
    rig.psy(['build']);
    // Restore the old mtime after a same-size rewrite: only the racy rule or ctime catch it.
    const before = new Date(Date.now());
    utimesSync(rig.path('src/d.txt'), before, before);
    rig.psy(['build']);
    writeFileSync(rig.path('src/d.txt'), 'x\n');
    utimesSync(rig.path('src/d.txt'), before, before);
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['D']);
  });

  it('a deleted or modified output is rebuilt', () => {
    chain();
    rig.psy(['build']);
    rmSync(rig.path('cache/out/d.txt'));
    let r = rig.psy(['build', '-v']);
    expect(startedSteps(r.stdout)).toEqual(['D']);
    expect(r.stdout).toContain('(output cache/out/d.txt missing)');
    writeFileSync(rig.path('cache/out/d.txt'), 'tampered\n');
    r = rig.psy(['build', '-v']);
    expect(startedSteps(r.stdout)).toEqual(['D']);
    expect(r.stdout).toContain('output cache/out/d.txt changed since it was built');
    expect(rig.read('cache/out/d.txt')).toBe('d\n');
  });

  it('with its input changed too, a missing output is the reason given and a tampered one is not', () => {
    chain();
    rig.psy(['build']);
    rmSync(rig.path('cache/out/d.txt'));
    writeFileSync(rig.path('src/d.txt'), 'd1\n');
    let r = rig.psy(['build', '-v']);
    expect(r.stdout).toContain('(output cache/out/d.txt missing)');
    expect(rig.read('cache/out/d.txt')).toBe('d1\n');
    // An output replaced by a folder is not there as the file it is declared to be.
    rmSync(rig.path('cache/out/d.txt'));
    rig.write({'cache/out/d.txt/x': 'x\n'});
    r = rig.psy(['build', '-v']);
    expect(r.stdout).toContain('(output cache/out/d.txt missing)');
    // The input's change is what the new key differs by; the old output is not read.
    writeFileSync(rig.path('cache/out/d.txt'), 'tampered\n');
    writeFileSync(rig.path('src/d.txt'), 'd2\n');
    r = rig.psy(['build', '-v']);
    expect(startedSteps(r.stdout)).toEqual(['D']);
    expect(r.stdout).toContain('(input src/d.txt changed)');
    expect(rig.read('cache/out/d.txt')).toBe('d2\n');
  });

  it('a changed command reruns the target', () => {
    chain();
    rig.psy(['build']);
    rig.write({'build.config.ts': rig.read('build.config.ts').replace("'cp $in $out'},\n]", "'cat $in > $out'},\n]")});
    const r = rig.psy(['build', '-v']);
    expect(startedSteps(r.stdout)).toEqual(['D']);
    expect(r.stdout).toContain('(command changed)');
  });

  it('rule code, rule helpers and parameters join the key', () => {
    rig.write({
      'src/in.txt': 'x\n',
      'rules/helper.ts': `export const suffix = '!';\n`,
      'rules/stamp.ts': `import {defineRule} from '${ruleModule}';
import {readFile, writeFile} from 'node:fs/promises';
import {suffix} from './helper.js';
export const stamp = defineRule({name: 'stamp', version: 1, module: import.meta.url, async run(ctx) {
  const text = await readFile(ctx.inputs['src']![0]!, 'utf8');
  await writeFile(ctx.outputs['out']!, text.trim() + String(ctx.params['tag']) + suffix + '\\n');
}});
`,
      'build.config.ts': `import {stamp} from './rules/stamp.js';
export default {targets: [{name: 's', inputs: {src: 'src/in.txt'}, params: {tag: 'v1'}, outputs: {out: 's.txt'}, rule: stamp}]};
`,
    });
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['s']);
    expect(rig.read('cache/out/s.txt')).toBe('xv1!\n');
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual([]);
    // A module the rule imports changed: the rule's identity changed.
    rig.write({'rules/helper.ts': `export const suffix = '?';\n`});
    let r = rig.psy(['build', '-v']);
    expect(r.stdout).toContain('(rule stamp changed)');
    expect(rig.read('cache/out/s.txt')).toBe('xv1?\n');
    rig.write({'build.config.ts': rig.read('build.config.ts').replace("tag: 'v1'", "tag: 'v2'")});
    r = rig.psy(['build', '-v']);
    expect(r.stdout).toContain('(parameters changed)');
    expect(rig.read('cache/out/s.txt')).toBe('xv2?\n');
  });

  it('a tool version change reruns the target and explain names both versions', () => {
    rig.write({
      'bin/fake-mksquashfs': '#!/bin/sh\necho "mksquashfs version 4.5 (2021/07/25)"\n',
      'src/in.txt': 'x\n',
      'build.config.ts': `export default {targets: [{name: 'sq', inputs: {s: 'src/in.txt'}, outputs: {o: 'sq'}, command: 'cp $in $out',
  tools: [{command: 'fake-mksquashfs', versionArgs: ['-version']}]}]};
`,
    });
    chmodSync(rig.path('bin/fake-mksquashfs'), 0o755);
    const env = {PATH: `${rig.path('bin')}:${process.env['PATH']}`};
    expect(startedSteps(rig.psy(['build'], env).stdout)).toEqual(['sq']);
    expect(startedSteps(rig.psy(['build'], env).stdout)).toEqual([]);
    rig.write({'bin/fake-mksquashfs': '#!/bin/sh\necho "mksquashfs version 4.6.1 (2023/03/26)"\n'});
    chmodSync(rig.path('bin/fake-mksquashfs'), 0o755);
    const explain = rig.psy(['explain', 'sq'], env);
    expect(explain.stdout.trim()).toBe('sq: tool fake-mksquashfs 4.5 → 4.6.1');
    expect(startedSteps(rig.psy(['build'], env).stdout)).toEqual(['sq']);
  });

  it('a glob input sees a new matching file', () => {
    rig.write({
      'src/one.c': '1\n',
      'build.config.ts': `export default {targets: [{name: 'cat', inputs: {s: {glob: 'src/*.c'}}, outputs: {o: 'all'}, command: 'cat $in > $out'}]};\n`,
    });
    rig.psy(['build']);
    expect(rig.read('cache/out/all')).toBe('1\n');
    rig.write({'src/two.c': '2\n'});
    const r = rig.psy(['build', '-v']);
    expect(r.stdout).toContain('(list of inputs changed)');
    expect(rig.read('cache/out/all')).toBe('1\n2\n');
  });

  it('directory outputs are hashed as trees and replaced whole', () => {
    rig.write({
      'src/n.txt': '3\n',
      'build.config.ts': `export default {targets: [
  {name: 'tree', inputs: {n: 'src/n.txt'}, outputs: {root: {dir: 'root'}}, command: 'for i in $(seq $(cat $in)); do echo $i > $out/f$i; done'},
  {name: 'list', inputs: {t: {target: 'tree'}}, outputs: {o: 'list.txt'}, command: 'ls $in | wc -l > $out'},
]};
`,
    });
    rig.psy(['build']);
    expect(rig.read('cache/out/list.txt').trim()).toBe('3');
    writeFileSync(rig.path('src/n.txt'), '2\n');
    expect(startedSteps(rig.psy(['build', '-j1']).stdout)).toEqual(['tree', 'list']);
    expect(rig.read('cache/out/list.txt').trim()).toBe('2');
    // A file removed from the directory output: the tree is rebuilt. (A file edited in
    // place is trusted once out of the racy window: engine-noop-fast.test.ts.)
    rmSync(rig.path('cache/out/root/f1'));
    expect(startedSteps(rig.psy(['build', '-j1']).stdout)).toEqual(['tree']);
    expect(rig.read('cache/out/root/f1')).toBe('1\n');
  });

  it('dry run says what would run and why, and runs nothing', () => {
    chain();
    rig.psy(['build']);
    writeFileSync(rig.path('src/a.txt'), 'Other\n');
    const r = rig.psy(['build', '-n']);
    expect(r.stdout).toContain('would run A: input src/a.txt changed');
    expect(r.stdout).toContain('would run B: input target A will rebuild');
    expect(rig.read('cache/out/a.txt')).toBe('Hello\n');
    expect(startedSteps(rig.psy(['build', '-j1']).stdout)).toEqual(['A', 'B', 'C']);
  });
});
