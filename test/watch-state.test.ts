/**
 * The watch state machine, driven in-process with the real engine and real file
 * watching in a temp dir: the exact sequence of states, the quiet period restarting on
 * every change, and the maximum wait under a continuous stream of changes.
 */
import {existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {silentLogger} from '../src/engine/events.js';
import {Watcher, type WatchEvent, type WatchState} from '../src/engine/watch.js';

let dir: string;
let watcher: Watcher | undefined;
let running: Promise<void> | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-watch-state-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'a.txt'), 'a0\n');
  // A copies its input, then waits while `hold` exists.
  writeFileSync(
    join(dir, 'build.config.ts'),
    `export default {targets: [
  {name: 'A', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out; if [ -e hold ]; then touch held; while [ -e hold ]; do sleep 0.02; done; fi'},
]};
`,
  );
  watcher = undefined;
  running = undefined;
});
afterEach(async () => {
  await watcher?.stop();
  await running;
  rmSync(dir, {recursive: true, force: true});
});

interface Session {
  readonly states: WatchState[];
  readonly events: WatchEvent[];
  /** Resolves when `check` holds (checked on every event and state change, and every 20 ms). */
  until(what: string, check: () => boolean): Promise<void>;
}

function startWatcher(options: {debounceMs?: number; maxWaitMs?: number} = {}): Session {
  const states: WatchState[] = [];
  const events: WatchEvent[] = [];
  watcher = new Watcher({
    cwd: dir,
    targets: ['A'],
    ...options,
    onEvent: (e) => events.push(e),
    onState: (s) => states.push(s),
    buildLogger: () => silentLogger,
  });
  running = watcher.run();
  return {
    states,
    events,
    until: (what, check) =>
      new Promise((resolve, reject) => {
        const deadline = Date.now() + 60_000;
        const tick = setInterval(() => {
          if (check()) {
            clearInterval(tick);
            resolve();
          } else if (Date.now() > deadline) {
            clearInterval(tick);
            reject(new Error(`timed out waiting for ${what}; states ${states.join(' ')}`));
          }
        }, 20);
      }),
  };
}

const builds = (s: Session) => s.events.filter((e) => e.type === 'build-start');
const done = (s: Session) => s.events.filter((e) => e.type === 'build-done' || e.type === 'build-error');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('watch state machine', () => {
  it('goes watching → debouncing → running → queued → debouncing → running → watching', async () => {
    const s = startWatcher();
    await s.until('the first build', () => done(s).length === 1 && watcher!.state === 'watching');
    expect(s.states).toEqual(['running', 'watching']);

    writeFileSync(join(dir, 'hold'), '');
    writeFileSync(join(dir, 'src', 'a.txt'), 'a1\n');
    await s.until('A to hold', () => existsSync(join(dir, 'held')));
    expect(watcher!.state).toBe('running');
    writeFileSync(join(dir, 'src', 'a.txt'), 'a2\n');
    await s.until('the queued state', () => watcher!.state === 'queued');
    rmSync(join(dir, 'hold'));
    await s.until('two more builds', () => done(s).length === 3 && watcher!.state === 'watching');
    expect(s.states).toEqual(['running', 'watching', 'debouncing', 'running', 'queued', 'debouncing', 'running', 'watching']);
    const starts = builds(s);
    expect(starts.map((e) => (e.type === 'build-start' ? e.triggers.map((t) => `${t.path} ${t.kind}`) : []))).toEqual([
      [],
      ['src/a.txt changed'],
      ['src/a.txt changed'],
    ]);
    const results = s.events.flatMap((e) => (e.type === 'build-done' ? [e.result.ran] : []));
    expect(results).toEqual([['A'], ['A'], ['A']]);
  });

  it('each change restarts the quiet period', async () => {
    const s = startWatcher({debounceMs: 400, maxWaitMs: 10_000});
    await s.until('the first build', () => done(s).length === 1 && watcher!.state === 'watching');
    // Changes 100 ms apart: each one lands inside the previous quiet period.
    for (let i = 0; i < 6; i++) {
      writeFileSync(join(dir, 'src', 'a.txt'), `quiet ${i}\n`);
      await sleep(100);
    }
    await s.until('the rebuild', () => done(s).length === 2 && watcher!.state === 'watching');
    // Without the restart, the timer would fire 400 ms after the first change, while
    // the writes go on, and a second (queued) build would follow.
    expect(builds(s)).toHaveLength(2);
    expect(s.states.slice(2)).toEqual(['debouncing', 'running', 'watching']);
  });

  it('a continuous stream of changes still builds after the maximum wait', async () => {
    const s = startWatcher({debounceMs: 300, maxWaitMs: 500});
    await s.until('the first build', () => done(s).length === 1 && watcher!.state === 'watching');
    let stop = false;
    let writerDone = false;
    const writer = (async () => {
      for (let i = 0; !stop && i < 400; i++) {
        writeFileSync(join(dir, 'src', 'a.txt'), `stream ${i}\n`);
        await sleep(50);
      }
      writerDone = true;
    })();
    // The quiet period never completes while the writer runs; the maximum wait ends it.
    await s.until('a build during the stream', () => builds(s).length >= 2);
    expect(writerDone).toBe(false);
    stop = true;
    await writer;
    await s.until('the end of the stream', () => watcher!.state === 'watching');
    expect(s.states[2]).toBe('debouncing');
    expect(s.states[3]).toBe('running');
  });
});
