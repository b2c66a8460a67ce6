import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
  // As on a fresh clone: the lock the rootfs reads has not been made yet.
  rig.write({
    'build.config.ts': `export default {default: 'image', targets: [
      {name: 'tools', description: 'host tools', inputs: {s: 'src/tools.txt'}, outputs: {o: 'tools.txt'}, command: 'cp $in $out'},
      {name: 'rootfs', inputs: {lock: 'alpine/packages.lock.json', t: {target: 'tools'}}, outputs: {o: 'rootfs.txt'}, command: 'cat $in > $out'},
      {name: 'sources', inputs: {src: {glob: 'src/**/*.c'}}, outputs: {o: 'sources.txt'}, command: 'cat $in > $out'},
      {name: 'image', inputs: {r: {target: 'rootfs'}}, outputs: {o: 'image.txt'}, command: 'cp $in $out'},
    ]};\n`,
    'src/tools.txt': 'tools\n',
  });
});
afterEach(() => rig.cleanup());

describe('commands that only read the graph work while an input is missing', () => {
  it('targets, graph, query and explain answer without stat-ing inputs', () => {
    const targets = rig.psy(['targets']);
    expect(targets.code, targets.stderr).toBe(0);
    expect(targets.stdout).toMatch(/^\s*tools\s+host tools$/m);
    expect(targets.stdout).toMatch(/^\* image$/m);
    const graph = rig.psy(['graph', '--json']);
    expect(graph.code, graph.stderr).toBe(0);
    expect((JSON.parse(graph.stdout) as {targets: Array<{name: string; inputs: string[]}>}).targets.find((t) => t.name === 'rootfs')!.inputs).toEqual([
      'alpine/packages.lock.json',
    ]);
    expect(rig.psy(['graph', 'image']).code).toBe(0);
    const query = rig.psy(['query', 'tools']);
    expect(query.code, query.stderr).toBe(0);
    expect(query.stdout).toContain('status: stale (never built)');
    const explain = rig.psy(['explain', 'tools']);
    expect(explain.code, explain.stderr).toBe(0);
    expect(explain.stdout.trim()).toBe('tools: never built');
  });

  it('the build that needs a missing input fails naming target and input; other builds run', () => {
    const r = rig.psy(['build', 'image']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('psy build: target "rootfs": input "lock" file alpine/packages.lock.json does not exist\n');
    // Found before anything ran.
    expect(r.stdout).toBe('');
    const dry = rig.psy(['build', '-n', 'image']);
    expect(dry.code).toBe(1);
    expect(dry.stderr).toBe('psy build: target "rootfs": input "lock" file alpine/packages.lock.json does not exist\n');
    const sources = rig.psy(['build', 'sources']);
    expect(sources.code).toBe(1);
    expect(sources.stderr).toBe('psy build: target "sources": input "src" glob "src/**/*.c" matches no file\n');
    const tools = rig.psy(['build', 'tools']);
    expect(tools.code, tools.stderr).toBe(0);
    expect(rig.read('cache/out/tools.txt')).toBe('tools\n');
    rig.write({'alpine/packages.lock.json': '{}\n'});
    expect(rig.psy(['build']).code).toBe(0);
  });

  it('an unknown target on the command line is named, with the closest declared one', () => {
    for (const cmd of [['build'], ['build', '-n'], ['explain'], ['query'], ['graph'], ['clean']]) {
      const far = rig.psy([...cmd, 'nosuchtarget']);
      expect(far.code).toBe(1);
      expect(far.stderr).toBe(`psy ${cmd[0]!}: unknown target "nosuchtarget" (see psy targets)\n`);
      const near = rig.psy([...cmd, 'rotfs']);
      expect(near.code).toBe(1);
      expect(near.stderr).toBe(`psy ${cmd[0]!}: unknown target "rotfs" (did you mean "rootfs"?)\n`);
    }
  });
});
