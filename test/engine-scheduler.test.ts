import {existsSync, readdirSync, readFileSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig, startedSteps} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
});
afterEach(() => rig.cleanup());

/** Each step logs "start|end name nanoseconds" to trace.log around a short sleep. */
function traced(targets: Array<{name: string; pool?: string; deps?: string[]}>, pools = '{}'): void {
  const decls = targets.map((t) => {
    const inputs = (t.deps ?? []).map((d) => `${d}: {target: '${d}'}`).join(', ');
    return `{name: '${t.name}', inputs: {${inputs}}, outputs: {o: '${t.name}'}, ${t.pool === undefined ? '' : `pool: '${t.pool}', `}command: 'echo start ${t.name} $(date +%s%N) >> trace.log; sleep 0.3; echo end ${t.name} $(date +%s%N) >> trace.log; touch $out'}`;
  });
  rig.write({'build.config.ts': `export default {pools: ${pools}, targets: [\n${decls.join(',\n')}\n]};\n`});
}

function maxOverlap(names?: string[]): number {
  const events = readFileSync(rig.path('trace.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' '))
    .filter(([, n]) => names === undefined || names.includes(n!))
    .map(([kind, , t]) => ({d: kind === 'start' ? 1 : -1, t: BigInt(t!)}))
    .sort((a, b) => (a.t === b.t ? a.d - b.d : a.t < b.t ? -1 : 1));
  let cur = 0;
  let max = 0;
  for (const e of events) max = Math.max(max, (cur += e.d));
  return max;
}

/** Alive and not a zombie (a killed orphan may wait for a reaper that never comes). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

function startOrder(): string[] {
  return readFileSync(rig.path('trace.log'), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('start'))
    .map((l) => l.split(' ')[1]!);
}

describe('scheduler', () => {
  it('-j bounds the steps running at once', () => {
    traced(['a', 'b', 'c', 'd', 'e', 'f'].map((name) => ({name})));
    expect(rig.psy(['build', '-j', '3']).code).toBe(0);
    const overlap = maxOverlap();
    expect(overlap).toBeLessThanOrEqual(3);
    expect(overlap).toBeGreaterThanOrEqual(2);
  });

  it('-j1 runs one step at a time', () => {
    traced(['a', 'b', 'c'].map((name) => ({name})));
    rig.psy(['build', '-j1']);
    expect(maxOverlap()).toBe(1);
  });

  it('a pool limits its own steps to its depth, others run beside them', () => {
    traced([{name: 'p1', pool: 'heavy'}, {name: 'p2', pool: 'heavy'}, {name: 'p3', pool: 'heavy'}, {name: 'free1'}, {name: 'free2'}], '{heavy: 1}');
    expect(rig.psy(['build', '-j4']).code).toBe(0);
    expect(maxOverlap(['p1', 'p2', 'p3'])).toBe(1);
    expect(maxOverlap()).toBeGreaterThanOrEqual(2);
  });

  it('the console pool runs one step at a time with the terminal passed through', () => {
    rig.write({
      'build.config.ts': `export default {targets: [
  {name: 'c1', outputs: {o: 'c1'}, pool: 'console', command: 'echo direct-from-c1; touch $out'},
  {name: 'c2', outputs: {o: 'c2'}, pool: 'console', command: 'echo direct-from-c2; touch $out'},
]};
`,
    });
    const r = rig.psy(['build', '-j4']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('direct-from-c1');
    expect(r.stdout).toContain('direct-from-c2');
  });

  it('ready steps start longest critical path first', () => {
    traced([{name: 'leaf1'}, {name: 'leaf2'}, {name: 'leaf3'}, {name: 'chain1'}, {name: 'chain2', deps: ['chain1']}, {name: 'chain3', deps: ['chain2']}]);
    rig.psy(['build', '-j1']);
    expect(startOrder()[0]).toBe('chain1');
  });

  it('buffers each step output and prints it whole', () => {
    rig.write({
      'build.config.ts': `export default {targets: [1, 2, 3].map((i) => ({name: 'w' + i, outputs: {o: 'w' + i},
  command: 'for k in 1 2 3; do echo w' + i + '-line$k; sleep 0.05; done; touch $out'}))};
`,
    });
    const r = rig.psy(['build', '-j3']);
    for (const i of [1, 2, 3]) expect(r.stdout).toContain(`w${i}-line1\nw${i}-line2\nw${i}-line3\n`);
  });

  it('shell steps see $in, $in_<name>, $out, $out_<name>, $tmp and SOURCE_DATE_EPOCH', () => {
    rig.write({
      'src/x.txt': 'x\n',
      'src/y.txt': 'y\n',
      'build.config.ts': `export default {sourceDateEpoch: 1700000000, targets: [
  {name: 'env', inputs: {first: 'src/x.txt', second: {files: ['src/y.txt']}}, outputs: {main: 'main.txt', extra: 'extra.txt'},
   command: 'echo "$in|$in_first|$in_second|$SOURCE_DATE_EPOCH" > $out_main; test -d "$tmp" && echo tmp-ok > $out_extra'},
]};
`,
    });
    expect(rig.psy(['build']).code).toBe(0);
    expect(rig.read('cache/out/main.txt')).toBe('src/x.txt src/y.txt|src/x.txt|src/y.txt|1700000000\n');
    expect(rig.read('cache/out/extra.txt')).toBe('tmp-ok\n');
  });
});

describe('interrupts', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} kills the running steps' process groups, removes temporaries, exits 130`, async () => {
      rig.write({
        'build.config.ts': `export default {targets: [
  {name: 'quick', outputs: {o: 'quick'}, command: 'echo q > $out'},
  {name: 'slow', inputs: {q: {target: 'quick'}}, outputs: {o: 'slow'},
   command: 'echo partial > $out; sh -c "echo \\\\$\\\\$ > sleeper.pid; exec sleep 60"; echo done >> $out'},
]};
`,
      });
      const run = rig.spawnPsy(['build', '-j2']);
      const deadline = Date.now() + 20_000;
      while (!existsSync(rig.path('sleeper.pid')) || readFileSync(rig.path('sleeper.pid'), 'utf8').trim() === '') {
        if (Date.now() > deadline) throw new Error(`step never started: ${run.output()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const sleeper = Number(readFileSync(rig.path('sleeper.pid'), 'utf8').trim());
      run.child.kill(signal);
      const r = await run.done;
      expect(r.code).toBe(130);
      expect(r.stdout).toContain('psy: interrupted');
      // The step's grandchild is gone (its group was killed).
      await new Promise((res) => setTimeout(res, 300));
      expect(isRunning(sleeper)).toBe(false);
      // No partial output in place, no temporaries left, lock released.
      expect(existsSync(rig.path('cache/out/slow'))).toBe(false);
      const tmp = rig.path('cache/out/.psy-tmp');
      expect(existsSync(tmp) ? readdirSync(tmp) : []).toEqual([]);
      expect(existsSync(rig.path('cache/state/lock'))).toBe(false);
      // The state is consistent: quick stays built, slow runs next time.
      rig.write({'build.config.ts': rig.read('build.config.ts').replace('exec sleep 60', 'true')});
      const next = rig.psy(['build']);
      expect(startedSteps(next.stdout)).toEqual(['slow']);
      expect(rig.read('cache/out/slow')).toBe('partial\ndone\n');
    });
  }
});
