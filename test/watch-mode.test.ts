/**
 * `psy build TARGET --watch`, driven through the built CLI on real files in a temp dir.
 *
 * Every test reads the watcher's own account of each build (`build N triggered by ...`,
 * the `[i/n] TARGET` lines of the steps it ran, `build N succeeded|failed`), and waits for
 * lines with generous timeouts instead of sleeping. To prove that nothing else was
 * built in between, a test edits a "sentinel" input afterwards and checks that the very
 * next build number is triggered by the sentinel alone.
 */
import {existsSync, mkdirSync, renameSync, rmSync, unlinkSync, writeFileSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig} from './helpers/engine-rig.js';

const WAIT_MS = 60_000;

interface BuildRecord {
  readonly n: number;
  /** `initial` or the trigger text after "triggered by". */
  readonly trigger: string;
  readonly steps: string[];
  status: 'running' | 'succeeded' | 'failed' | 'interrupted';
}

/** A running `psy build --watch` and what it printed so far. */
class WatchRun {
  readonly #proc: ReturnType<Rig['spawnPsy']>;
  #listeners: Array<() => void> = [];
  exit: {code: number | null; signal: NodeJS.Signals | null} | undefined;

  constructor(rig: Rig, args: string[]) {
    this.#proc = rig.spawnPsy(['build', '--watch', ...args]);
    const poke = () => {
      for (const l of this.#listeners) l();
    };
    this.#proc.child.stdout.on('data', poke);
    this.#proc.child.stderr.on('data', poke);
    void this.#proc.done.then((r) => {
      this.exit = {code: r.code, signal: r.signal};
      poke();
    });
  }

  /** stdout, then stderr (each in order; not interleaved). */
  get output(): string {
    return this.#proc.output();
  }

  /** Resolve once `check()` returns a value other than undefined; fail after WAIT_MS. */
  waitFor<T>(what: string, check: () => T | undefined, timeoutMs = WAIT_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const tryNow = () => {
        const v = check();
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (this.exit !== undefined) {
          done();
          reject(new Error(`psy exited (${JSON.stringify(this.exit)}) while waiting for ${what}; output:\n${this.output}`));
        }
      };
      // Output wakes the check up; the poll covers conditions on files.
      const poll = setInterval(tryNow, 50);
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}; output:\n${this.output}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.#listeners = this.#listeners.filter((l) => l !== tryNow);
      };
      this.#listeners.push(tryNow);
      tryNow();
    });
  }

  waitForText(pattern: RegExp): Promise<RegExpMatchArray> {
    return this.waitFor(String(pattern), () => pattern.exec(this.output) ?? undefined);
  }

  builds(): BuildRecord[] {
    const builds: BuildRecord[] = [];
    let current: BuildRecord | undefined;
    for (const line of this.output.split('\n')) {
      let m = /^psy watch: build (\d+)(?:: initial build| triggered by (.*))$/.exec(line);
      if (m !== null) {
        current = {n: Number(m[1]), trigger: m[2] ?? 'initial', steps: [], status: 'running'};
        builds.push(current);
        continue;
      }
      m = /^psy watch: build (\d+) (succeeded|failed|interrupted)/.exec(line);
      if (m !== null) {
        const b = builds.find((x) => x.n === Number(m![1]));
        if (b !== undefined) b.status = m[2] as BuildRecord['status'];
        continue;
      }
      m = /^\[\d+\/\d+\] (\S+)/.exec(line);
      if (m !== null && current !== undefined) current.steps.push(m[1]!);
    }
    return builds;
  }

  /** Wait until build `n` has ended, and return it. */
  build(n: number): Promise<BuildRecord> {
    return this.waitFor(`build ${n} to end`, () => {
      const b = this.builds().find((x) => x.n === n);
      return b !== undefined && b.status !== 'running' ? b : undefined;
    });
  }

  /** Wait until the watcher is idle again after build `n`. */
  async idleAfter(n: number): Promise<BuildRecord> {
    const b = await this.build(n);
    await this.waitFor(`idle after build ${n}`, () => {
      const lines = this.output.split('\n');
      const end = lines.findIndex((l) => new RegExp(`^psy watch: build ${n} (succeeded|failed|interrupted)`).test(l));
      return end >= 0 && lines.slice(end + 1).some((l) => l.startsWith('psy watch: waiting for changes')) ? true : undefined;
    });
    return b;
  }

  /** Ctrl-C; resolves with the exit status. */
  async interrupt(): Promise<{code: number | null; signal: NodeJS.Signals | null}> {
    this.#proc.child.kill('SIGINT');
    return this.waitFor('exit', () => this.exit);
  }

  kill(): void {
    if (this.exit === undefined) this.#proc.child.kill('SIGKILL');
  }
}

let rig: Rig;
let run: WatchRun | undefined;
beforeEach(() => {
  rig = new Rig();
  run = undefined;
});
afterEach(async () => {
  if (run !== undefined && run.exit === undefined) {
    run.kill();
    await run.waitFor('exit after kill', () => run!.exit).catch(() => undefined);
  }
  rig.cleanup();
});

function start(args: string[]): WatchRun {
  run = new WatchRun(rig, args);
  return run;
}

/**
 * src/a.txt → A → B → C (+ src/c.txt); D reads src/d.txt only; G reads the glob
 * src/**\/*.c; S reads src/sentinel.txt. The config imports targets/extra.ts. A test
 * may give A or D another command.
 */
function project(commands: {readonly A?: string; readonly D?: string} = {}): void {
  const command = (name: 'A' | 'D') => JSON.stringify(commands[name] ?? 'cp $in $out');
  rig.write({
    'src/a.txt': 'a1\n',
    'src/c.txt': 'c1\n',
    'src/d.txt': 'd1\n',
    'src/x.c': 'int x;\n',
    'src/sentinel.txt': 's0\n',
    'targets/extra.ts': `export const suffix = 'v1';\n`,
    'build.config.ts': `import {suffix} from './targets/extra.ts';
export default {targets: [
  {name: 'A', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: ${command('A')}},
  {name: 'B', inputs: {a: {target: 'A'}}, outputs: {o: 'b.txt'}, command: 'cp $in $out'},
  {name: 'C', inputs: {b: {target: 'B'}, c: 'src/c.txt'}, outputs: {o: 'c.txt'}, command: 'cat $in > $out; echo ' + suffix + ' >> $out'},
  {name: 'D', inputs: {d: 'src/d.txt'}, outputs: {o: 'd.txt'}, command: ${command('D')}},
  {name: 'G', inputs: {c: {glob: 'src/**/*.c'}}, outputs: {o: 'g.txt'}, command: 'cat $in > $out'},
  {name: 'S', inputs: {s: 'src/sentinel.txt'}, outputs: {o: 's.txt'}, command: 'cp $in $out'},
  {name: 'all', inputs: {c: {target: 'C'}, g: {target: 'G'}, s: {target: 'S'}}, outputs: {o: 'all.txt'}, command: 'cat $in > $out'},
]};
`,
  });
}

let sentinelCount = 0;
/** Edit the sentinel and check that build `n` is triggered by it alone (nothing queued in between). */
async function expectSentinelBuild(r: WatchRun, n: number): Promise<void> {
  writeFileSync(rig.path('src/sentinel.txt'), `s${++sentinelCount}\n`);
  const b = await r.idleAfter(n);
  expect(b.trigger).toBe('src/sentinel.txt (changed)');
  expect(b.steps).toEqual(['S', 'all']);
}

describe('psy build --watch', () => {
  it('an edit rebuilds exactly its cone, once; inputs outside the targets are not watched', async () => {
    project();
    const r = start(['all', '-j1']);
    const first = await r.idleAfter(1);
    expect(first.trigger).toBe('initial');
    expect(first.steps.sort()).toEqual(['A', 'B', 'C', 'G', 'S', 'all']);
    expect(r.output).toMatch(/^psy watch: watching 4 input files, 1 glob \(src\/\*\*\/\*\.c\), 2 config files in \d+ folders? for all$/m);

    writeFileSync(rig.path('src/c.txt'), 'c2\n');
    const second = await r.idleAfter(2);
    expect(second.trigger).toBe('src/c.txt (changed)');
    expect(second.steps).toEqual(['C', 'all']);
    expect(rig.read('cache/out/c.txt')).toBe('a1\nc2\nv1\n');

    writeFileSync(rig.path('src/a.txt'), 'a2\n');
    const third = await r.idleAfter(3);
    expect(third.trigger).toBe('src/a.txt (changed)');
    expect(third.steps).toEqual(['A', 'B', 'C', 'all']);

    // D is not part of `all`: editing its input starts no build.
    writeFileSync(rig.path('src/d.txt'), 'd2\n');
    await expectSentinelBuild(r, 4);
    expect(existsSync(rig.path('cache/out/d.txt'))).toBe(false);
  });

  it('a burst of saves causes one rebuild', async () => {
    project();
    const r = start(['all', '-j1']);
    await r.idleAfter(1);
    for (let i = 0; i < 5; i++) writeFileSync(rig.path('src/a.txt'), `burst ${i}\n`);
    const b = await r.idleAfter(2);
    expect(b.trigger).toBe('src/a.txt (changed)');
    expect(b.steps).toEqual(['A', 'B', 'C', 'all']);
    expect(rig.read('cache/out/a.txt')).toBe('burst 4\n');
    await expectSentinelBuild(r, 3);
  });

  it('atomic saves (temp file + rename, and backup + rewrite) are one change each', async () => {
    project();
    const r = start(['all', '-j1']);
    await r.idleAfter(1);

    // Write a temporary file beside the original, then rename it over the original.
    writeFileSync(rig.path('src/.a.txt.tmp1234'), 'atomic 1\n');
    renameSync(rig.path('src/.a.txt.tmp1234'), rig.path('src/a.txt'));
    const b2 = await r.idleAfter(2);
    expect(b2.trigger).toBe('src/a.txt (changed)');
    expect(b2.steps).toEqual(['A', 'B', 'C', 'all']);
    expect(rig.read('cache/out/a.txt')).toBe('atomic 1\n');

    // Move the original aside as a backup, write a new file, delete the backup.
    renameSync(rig.path('src/a.txt'), rig.path('src/a.txt~'));
    writeFileSync(rig.path('src/a.txt'), 'atomic 2\n');
    unlinkSync(rig.path('src/a.txt~'));
    const b3 = await r.idleAfter(3);
    expect(b3.trigger).toBe('src/a.txt (changed)');
    expect(b3.steps).toEqual(['A', 'B', 'C', 'all']);
    expect(rig.read('cache/out/a.txt')).toBe('atomic 2\n');
    expect(r.output).not.toMatch(/was deleted/);
    await expectSentinelBuild(r, 4);
  });

  it('a change during a running build starts exactly one follow-up build', async () => {
    // A copies its input, then holds while the file `hold` exists, until `release` appears.
    project({A: 'cp $in $out; if [ -e hold ]; then touch held; while [ ! -e release ]; do sleep 0.02; done; fi'});
    const r = start(['all', '-j1']);
    await r.idleAfter(1);

    writeFileSync(rig.path('hold'), '');
    writeFileSync(rig.path('src/a.txt'), 'during 1\n');
    await r.waitFor('A to hold', () => (existsSync(rig.path('held')) ? true : undefined));
    // Build 2 is running A now; three more saves arrive.
    for (let i = 2; i <= 4; i++) writeFileSync(rig.path('src/a.txt'), `during ${i}\n`);
    await r.waitForText(/^psy watch: build 2 triggered by/m);
    rmSync(rig.path('hold'));
    writeFileSync(rig.path('release'), '');

    const b2 = await r.build(2);
    expect(b2.status).toBe('succeeded');
    const b3 = await r.idleAfter(3);
    expect(b3.trigger).toBe('src/a.txt (changed)');
    expect(b3.steps).toEqual(['A', 'B', 'C', 'all']);
    expect(rig.read('cache/out/a.txt')).toBe('during 4\n');
    await expectSentinelBuild(r, 4);
  });

  it('a new file matching a glob (in a new folder) triggers a rebuild; others do not', async () => {
    project();
    const r = start(['all', '-j1']);
    await r.idleAfter(1);
    writeFileSync(rig.path('src/notes.md'), 'not a C file\n');
    mkdirSync(rig.path('src/sub/deeper'), {recursive: true});
    writeFileSync(rig.path('src/sub/deeper/y.c'), 'int y;\n');
    const b = await r.idleAfter(2);
    expect(b.trigger).toBe('src/sub/deeper/y.c (added)');
    expect(b.steps).toEqual(['G', 'all']);
    // Glob matches are read in sorted order.
    expect(rig.read('cache/out/g.txt')).toBe('int y;\nint x;\n');
    // The new file is now an input like any other.
    writeFileSync(rig.path('src/sub/deeper/y.c'), 'int y2;\n');
    const b3 = await r.idleAfter(3);
    expect(b3.trigger).toBe('src/sub/deeper/y.c (changed)');
    expect(b3.steps).toEqual(['G', 'all']);
    await expectSentinelBuild(r, 4);
  });

  it('a deleted input is reported, watching continues, and its return rebuilds', async () => {
    project();
    const r = start(['all', '-j1']);
    await r.idleAfter(1);
    unlinkSync(rig.path('src/c.txt'));
    const b2 = await r.idleAfter(2);
    expect(b2.status).toBe('failed');
    expect(b2.trigger).toBe('src/c.txt (deleted)');
    expect(r.output).toMatch(/^psy watch: input src\/c\.txt was deleted$/m);
    // On stderr, like a plain `psy build`.
    await r.waitForText(/^psy build: target "C": input "c" file src\/c\.txt does not exist$/m);
    expect(r.exit).toBeUndefined();

    writeFileSync(rig.path('src/c.txt'), 'c back\n');
    const b3 = await r.idleAfter(3);
    expect(b3.status).toBe('succeeded');
    // chokidar may report the re-created file as added or as changed, depending on how
    // its delete and create events fall; either way it must rebuild the cone.
    expect(b3.trigger).toMatch(/^src\/c\.txt \((added|changed)\)$/);
    expect(b3.steps).toEqual(['C', 'all']);
    expect(rig.read('cache/out/c.txt')).toBe('a1\nc back\nv1\n');
  });

  it('a watched folder that disappears and comes back (a checkout) is watched again', async () => {
    project();
    const r = start(['C', '-j1']);
    await r.idleAfter(1);
    renameSync(rig.path('src'), rig.path('src-away'));
    const b2 = await r.idleAfter(2);
    expect(b2.status).toBe('failed');
    expect(b2.trigger).toMatch(/src\/a\.txt \(deleted\)/);
    renameSync(rig.path('src-away'), rig.path('src'));
    const b3 = await r.idleAfter(3);
    expect(b3.status).toBe('succeeded');
    expect(b3.trigger).toMatch(/src\/a\.txt \(added\)/);
    writeFileSync(rig.path('src/c.txt'), 'c after\n');
    const b4 = await r.idleAfter(4);
    expect(b4.trigger).toBe('src/c.txt (changed)');
    expect(b4.steps).toEqual(['C']);
  });

  it('a config edit (and an edit of a module it imports) reloads the graph', async () => {
    project();
    const r = start(['all', '-j1']);
    await r.idleAfter(1);

    // Change D's command: D is not in the cone, so nothing runs.
    writeFileSync(
      rig.path('build.config.ts'),
      rig.read('build.config.ts').replace(`{o: 'd.txt'}, command: 'cp $in $out'`, `{o: 'd.txt'}, command: 'cat $in > $out'`),
    );
    const b2 = await r.idleAfter(2);
    expect(b2.trigger).toBe('build.config.ts (changed)');
    expect(b2.steps).toEqual([]);
    expect(r.output).toMatch(/^psy watch: config changed: reloading the graph$/m);

    // The imported module changes C's command.
    writeFileSync(rig.path('targets/extra.ts'), `export const suffix = 'v2';\n`);
    const b3 = await r.idleAfter(3);
    expect(b3.trigger).toBe('targets/extra.ts (changed)');
    expect(b3.steps).toEqual(['C', 'all']);
    expect(rig.read('cache/out/c.txt')).toBe('a1\nc1\nv2\n');

    // The new graph is watched: a target added by the config edit, with a new input.
    writeFileSync(rig.path('src/e.txt'), 'e1\n');
    writeFileSync(
      rig.path('build.config.ts'),
      rig
        .read('build.config.ts')
        .replace(`s: {target: 'S'}}`, `s: {target: 'S'}, e: {target: 'E'}}`)
        .replace(`]};`, `  {name: 'E', inputs: {e: 'src/e.txt'}, outputs: {o: 'e.txt'}, command: 'cp $in $out'},\n]};`),
    );
    const b4 = await r.idleAfter(4);
    expect(b4.steps).toEqual(['E', 'all']);
    writeFileSync(rig.path('src/e.txt'), 'e2\n');
    const b5 = await r.idleAfter(5);
    expect(b5.trigger).toBe('src/e.txt (changed)');
    expect(b5.steps).toEqual(['E', 'all']);

    // A broken config is reported; fixing it resumes.
    const good = rig.read('build.config.ts');
    writeFileSync(rig.path('build.config.ts'), good.replace('export default {', 'export default {{'));
    const b6 = await r.idleAfter(6);
    expect(b6.status).toBe('failed');
    await r.waitForText(/^psy build: build\.config\.ts:\d+: /m);
    writeFileSync(rig.path('build.config.ts'), good);
    const b7 = await r.idleAfter(7);
    expect(b7.status).toBe('succeeded');
    expect(b7.steps).toEqual([]);
  });

  it('a build locked out by another psy build is tried again with its changes', async () => {
    project({D: 'cp $in $out; touch held; while [ -e hold ]; do sleep 0.02; done'});
    const r = start(['S']);
    await r.idleAfter(1);
    // A plain build of D holds the project's lock until \`hold\` goes away.
    writeFileSync(rig.path('hold'), '');
    const other = rig.spawnPsy(['build', 'D']);
    await pollUntil('the other build to hold', () => existsSync(rig.path('held')));
    writeFileSync(rig.path('src/sentinel.txt'), 'while locked\n');
    const b2 = await r.build(2);
    expect(b2.status).toBe('failed');
    expect(r.output).toMatch(/^psy watch: build 2 failed: another psy build \(pid \d+\) is using .*\(trying again in 1 s\)$/m);
    rmSync(rig.path('hold'));
    expect((await other.done).code).toBe(0);
    const b3 = await r.idleAfter(3);
    expect(b3.status).toBe('succeeded');
    expect(b3.trigger).toBe('src/sentinel.txt (changed)');
    expect(b3.steps).toEqual(['S']);
    expect(rig.read('cache/out/s.txt')).toBe('while locked\n');
  });

  it('a data file the config read is watched, and its change is reported rather than half-applied', async () => {
    rig.write({
      'list.json': '["p"]\n',
      'p.txt': 'p\n',
      'build.config.ts': `import {readFileSync} from 'node:fs';
const names = JSON.parse(readFileSync(new URL('./list.json', import.meta.url), 'utf8')) as string[];
export default {targets: names.map((n) => ({name: n, inputs: {s: n + '.txt'}, outputs: {o: n + '.out'}, command: 'cp $in $out'}))};
`,
    });
    const r = start([]);
    await r.idleAfter(1);
    writeFileSync(rig.path('list.json'), '["p", "q"]\n');
    await r.waitForText(/^psy watch: list\.json changed, which the config read when it was loaded; restart psy build --watch to load it again$/m);
    writeFileSync(rig.path('p.txt'), 'p2\n');
    const b2 = await r.idleAfter(2);
    expect(b2.trigger).toBe('p.txt (changed)');
    expect(b2.steps).toEqual(['p']);
  });

  it('a failing step shows its error, watching continues, the fix rebuilds; --then runs after success only', async () => {
    project({A: 'if grep -q bad $in; then echo "A refuses: bad input" >&2; exit 3; fi; cp $in $out'});
    const r = start(['all', '-j1', '--then', 'cat cache/out/a.txt >> then.log; echo then-ran']);
    await r.idleAfter(1);
    await r.waitForText(/^then-ran$/m);
    expect(rig.read('then.log')).toBe('a1\n');

    writeFileSync(rig.path('src/a.txt'), 'bad\n');
    const b2 = await r.idleAfter(2);
    expect(b2.status).toBe('failed');
    expect(b2.steps).toEqual(['A']);
    expect(r.output).toMatch(/^FAILED: A: /m);
    expect(r.output).toMatch(/A refuses: bad input/);
    await r.waitForText(/^psy build: 1 target failed: A$/m);

    writeFileSync(rig.path('src/a.txt'), 'good\n');
    const b3 = await r.idleAfter(3);
    expect(b3.status).toBe('succeeded');
    expect(b3.steps).toEqual(['A', 'B', 'C', 'all']);
    await r.waitFor('second then-run', () => (r.output.match(/^then-ran$/gm)?.length === 2 ? true : undefined));
    // Nothing ran the then-command after the failed build.
    expect(rig.read('then.log')).toBe('a1\ngood\n');
    expect(r.output.match(/^psy watch: then: cat /gm)?.length).toBe(2);
  });

  it('Ctrl-C stops the running step and exits with 130', async () => {
    project({A: 'cp $in $out; if grep -q slow $in; then sleep 60 & echo $! > sleep.pid; wait; fi'});
    const r = start(['all', '-j1']);
    await r.idleAfter(1);
    writeFileSync(rig.path('src/a.txt'), 'slow\n');
    await r.waitFor('the slow step', () => (existsSync(rig.path('sleep.pid')) && rig.read('sleep.pid').trim() !== '' ? true : undefined));
    const pid = Number(rig.read('sleep.pid').trim());
    const exit = await r.interrupt();
    expect(exit).toEqual({code: 130, signal: null});
    expect(r.output).toMatch(/^psy: interrupted$/m);
    expect(r.output).toMatch(/^psy watch: stopped$/m);
    await pollUntil('the step to be gone', () => !isAlive(pid));
  });

  it('a --then command still running is stopped before the next one starts, and on Ctrl-C', async () => {
    project();
    // Each run records its pid and lives until stopped.
    const r = start(['S', '--then', 'sleep 120 & echo $! >> then.pids; wait']);
    await r.idleAfter(1);
    await pollUntil('the first then-command', () => existsSync(rig.path('then.pids')) && rig.read('then.pids').trim().split('\n').length === 1);
    const first = Number(rig.read('then.pids').trim());
    expect(isAlive(first)).toBe(true);

    writeFileSync(rig.path('src/sentinel.txt'), 'next\n');
    await r.idleAfter(2);
    await pollUntil('the second then-command', () => rig.read('then.pids').trim().split('\n').length === 2);
    const second = Number(rig.read('then.pids').trim().split('\n')[1]);
    await pollUntil('the first then-command to be gone', () => !isAlive(first));
    expect(isAlive(second)).toBe(true);

    expect(await r.interrupt()).toEqual({code: 130, signal: null});
    await pollUntil('the second then-command to be gone', () => !isAlive(second));
  });

  it('Ctrl-C while idle exits with 130', async () => {
    project();
    const r = start(['S']);
    await r.idleAfter(1);
    expect(await r.interrupt()).toEqual({code: 130, signal: null});
  });

  it('refuses --then without --watch, and a missing config', () => {
    const a = rig.psy(['build', '--then', 'true']);
    expect(a.code).toBe(2);
    expect(a.stderr.trim()).toBe('psy build: --then needs --watch (see psy build --help)');
    const b = rig.psy(['build', '--watch']);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/^psy build: no build\.config\.ts in /m);
  });
});

async function pollUntil(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
