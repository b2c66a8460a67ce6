import {existsSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig, ruleModule} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
});
afterEach(() => rig.cleanup());

function config(targets: string, extra = ''): Record<string, string> {
  return {'build.config.ts': `${extra}\nexport default {targets: ${targets}};\n`, 'src/a.txt': 'a\n'};
}

/** A config error: exit 1, one line on stderr naming the cause, nothing on stdout, no stack. */
function expectOneLineError(args: string[], pattern: RegExp) {
  const r = rig.psy(args);
  expect(r.code).toBe(1);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  return r;
}

describe('configuration errors are one line naming target and cause', () => {
  it('cycle: prints the cycle', () => {
    rig.write(
      config(`[
      {name: 'a', inputs: {x: {target: 'c'}}, outputs: {o: 'a'}, command: 'cat $in > $out'},
      {name: 'b', inputs: {x: {target: 'a'}}, outputs: {o: 'b'}, command: 'cat $in > $out'},
      {name: 'c', inputs: {x: {target: 'b'}}, outputs: {o: 'c'}, command: 'cat $in > $out'},
    ]`),
    );
    expectOneLineError(['build'], /^psy build: dependency cycle: (a -> c -> b -> a|c -> b -> a -> c|b -> a -> c -> b)$/);
  });

  it('duplicate output', () => {
    rig.write(
      config(`[
      {name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'same.txt'}, command: 'cp $in $out'},
      {name: 'b', inputs: {s: 'src/a.txt'}, outputs: {o: 'same.txt'}, command: 'cp $in $out'},
    ]`),
    );
    expectOneLineError(['build'], /output cache\/out\/same\.txt is declared by both "a" and "b"/);
  });

  it('unknown dependency', () => {
    rig.write(config(`[{name: 'a', inputs: {up: {target: 'nope'}}, outputs: {o: 'a'}, command: 'true'}]`));
    expectOneLineError(['build'], /target "a": input "up" names unknown target "nope"/);
  });

  it('unknown output of a dependency', () => {
    rig.write(
      config(`[
      {name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a'}, command: 'cp $in $out'},
      {name: 'b', inputs: {up: {target: 'a', output: 'zz'}}, outputs: {o: 'b'}, command: 'cp $in $out'},
    ]`),
    );
    expectOneLineError(['build'], /target "b": input "up" names unknown output "zz" of target "a"/);
  });

  it('missing input file', () => {
    rig.write(config(`[{name: 'a', inputs: {s: 'src/missing.txt'}, outputs: {o: 'a'}, command: 'cp $in $out'}]`));
    expectOneLineError(['build'], /target "a": input "s" file src\/missing\.txt does not exist/);
  });

  it('glob matching nothing', () => {
    rig.write(config(`[{name: 'a', inputs: {s: {glob: 'src/**/*.c'}}, outputs: {o: 'a'}, command: 'cat $in > $out'}]`));
    expectOneLineError(['build'], /target "a": input "s" glob "src\/\*\*\/\*\.c" matches no file/);
  });

  it('output outside the output folder', () => {
    rig.write(config(`[{name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: '../../evil.txt'}, command: 'cp $in $out'}]`));
    expectOneLineError(['build'], /target "a": output "o" \(\.\.\/\.\.\/evil\.txt\) is outside the output folder cache\/out/);
  });

  it('absolute output path', () => {
    rig.write(config(`[{name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: '/etc/passwd'}, command: 'cp $in $out'}]`));
    expectOneLineError(['build'], /output "o" \(\/etc\/passwd\) is outside the output folder/);
  });

  it('invalid target name', () => {
    rig.write(config(`[{name: 'has space', outputs: {o: 'a'}, command: 'true'}]`));
    expectOneLineError(['build'], /invalid target name "has space"/);
  });

  it('duplicate target name', () => {
    rig.write(config(`[{name: 'a', outputs: {o: 'a'}, command: 'touch $out'}, {name: 'a', outputs: {o: 'b'}, command: 'touch $out'}]`));
    expectOneLineError(['build'], /target "a" is declared twice/);
  });

  it('unknown pool', () => {
    rig.write(config(`[{name: 'a', outputs: {o: 'a'}, command: 'touch $out', pool: 'big'}]`));
    expectOneLineError(['build'], /target "a": unknown pool "big"/);
  });

  it('unknown target on the command line', () => {
    rig.write(config(`[{name: 'a', outputs: {o: 'a'}, command: 'touch $out'}]`));
    expectOneLineError(['build', 'zzz'], /unknown target "zzz"/);
  });

  it('TypeScript syntax error in the config names file:line', () => {
    rig.write({'build.config.ts': `const x: number = 1;\nexport default {\n  targets: [,\n  oops oops\n};\n`});
    expectOneLineError(['build'], /^psy build: build\.config\.ts:\d+: .+/);
  });

  it('TypeScript syntax error in an imported module names that file and line', () => {
    rig.write({
      'build.config.ts': `import {targets} from './targets/all.js';\nexport default {targets};\n`,
      'targets/all.ts': `export const targets = [];\n\nlet broken = ;\n`,
    });
    expectOneLineError(['build'], /^psy build: targets\/all\.ts:3: Expression expected$/);
  });

  it('config import that cannot be resolved', () => {
    rig.write({'build.config.ts': `import {x} from './targets/nope.js';\nexport default {targets: x};\n`});
    expectOneLineError(['build'], /build\.config\.ts: cannot resolve import '\.\/targets\/nope\.js'/);
  });

  it('missing config file', () => {
    expectOneLineError(['build'], /no build\.config\.ts in /);
    expectOneLineError(['build', '--config', 'other.ts'], /config file other\.ts not found/);
  });
});

describe('step failures name the target, the command or rule, and the output', () => {
  it('a step that exits non-zero', () => {
    // The output (computed by the shell) differs from the command text, so both are seen.
    rig.write(config(`[{name: 'bad', outputs: {o: 'x'}, command: 'echo diagnostics \\$((40 + 2)); echo on stderr >&2; exit 3'}]`));
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: bad: command exited with status 3');
    expect(r.stdout).toContain('echo diagnostics $((40 + 2)); echo on stderr >&2; exit 3');
    expect(r.stdout).toContain('diagnostics 42');
    expect(r.stdout).toContain('on stderr');
    expect(r.stderr).toBe('psy build: 1 target failed: bad\n');
    expect(existsSync(rig.path('cache/out/x'))).toBe(false);
  });

  it('command not found', () => {
    rig.write(config(`[{name: 'nf', outputs: {o: 'x'}, command: 'psy-no-such-tool --make $out'}]`));
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: nf: command not found: psy-no-such-tool');
  });

  it("a failing one-line step reads as the same step spanning two lines, with nothing of psy's shell workers", () => {
    rig.write(
      config(`[
      {name: 'one', outputs: {o: 'x'}, command: 'psy-no-such-tool $out; cd /psy-no-such-dir'},
      {name: 'two', outputs: {o: 'y'}, command: 'psy-no-such-tool $out\\ncd /psy-no-such-dir'},
    ]`),
    );
    const r = rig.psy(['build', '-k', '0', '-j', '1']);
    expect(r.code).toBe(1);
    const block = (name: string) =>
      r.stdout
        .split('FAILED: ')
        .find((b) => b.startsWith(name))!
        .split('\n')
        .filter((l) => l.startsWith('/bin/sh'));
    expect(block('one')).toHaveLength(2);
    expect(block('one')).toEqual(block('two').map((l) => l.replace(': 2: cd', ': 1: cd')));
    expect(r.stdout).not.toMatch(/eval|psy_line/);
  });

  it('a declared tool that is not installed fails before anything runs', () => {
    rig.write(
      config(
        `[{name: 't', outputs: {o: 'x'}, command: 'touch $out', tools: [{command: 'psy-absent-tool', versionArgs: ['--version'], debianPackage: 'psy-absent'}]}]`,
      ),
    );
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('psy build: target "t": tool "psy-absent-tool" not found on PATH (install the Debian package psy-absent)');
  });

  it('a step that does not produce a declared output', () => {
    rig.write(config(`[{name: 'lazy', outputs: {a: 'a.txt', b: 'b.txt'}, command: 'echo a > $out_a'}]`));
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: lazy: step did not produce its declared output "b" (cache/out/b.txt)');
    // Nothing of the failed step lands in place.
    expect(existsSync(rig.path('cache/out/a.txt'))).toBe(false);
  });

  it('a rule that throws', () => {
    rig.write({
      ...config(`[{name: 'r', outputs: {o: 'x'}, rule: boom}]`, `import {boom} from './rules/boom.js';`),
      'rules/boom.ts': `import {defineRule} from '${ruleModule}';
export const boom = defineRule({name: 'boom', version: 1, module: import.meta.url, async run(ctx) {
  ctx.log('about to fail');
  throw new Error('kernel version missing from params');
}});
`,
    });
    const r = rig.psy(['build']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAILED: r: kernel version missing from params/);
    expect(r.stdout).toContain('rule boom');
    expect(r.stdout).toContain('about to fail');
  });

  it('stops at the first failure by default, -k 0 keeps going', () => {
    rig.write(
      config(`[
      {name: 'f1', outputs: {o: 'f1'}, command: 'exit 1'},
      {name: 'f2', outputs: {o: 'f2'}, command: 'exit 1'},
      {name: 'ok', inputs: {s: 'src/a.txt'}, outputs: {o: 'ok'}, command: 'cp $in $out'},
      {name: 'after', inputs: {x: {target: 'f1'}}, outputs: {o: 'after'}, command: 'cp $in $out'},
    ]`),
    );
    const first = rig.psy(['build', '-j1']);
    expect(first.code).toBe(1);
    expect(first.stdout.match(/^FAILED:/gm)).toHaveLength(1);
    const all = rig.psy(['build', '-j1', '-k', '0', '--json']);
    expect(all.code).toBe(1);
    const res = JSON.parse(all.stdout) as {failed: Array<{target: string}>; skipped: string[]; ran: string[]};
    expect(res.failed.map((f) => f.target).sort()).toEqual(['f1', 'f2']);
    expect(res.skipped).toEqual(['after']);
    expect(res.ran).toEqual(['ok']);
  });

  it('bad command-line options are one-line usage errors', () => {
    rig.write(config(`[]`));
    const r = rig.psy(['build', '-j', 'lots']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe('psy build: --jobs needs an integer ≥ 1, got "lots"');
  });
});
