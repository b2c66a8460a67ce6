import {spawnSync} from 'node:child_process';
import {cpSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {Rig, startedSteps, type RunResult} from './helpers/engine-rig.js';
import {repoRoot} from './helpers/shared-data.js';

// `psy build` answers a no-op before it loads the engine (src/cli/build-fast.ts). These
// tests check that it really does so, and that what it prints is what the full no-op
// check prints, for every output option.

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
  rig.write({
    'src/a.txt': 'a\n',
    'src/b.txt': 'b\n',
    'other.config.ts': `export default {targets: [{name: 'x', inputs: {s: 'src/a.txt'}, outputs: {o: 'x.out'}, command: 'cp $in $out'}]};\n`,
    'build.config.ts': `export default {targets: [
  {name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.out'}, command: 'cp $in $out'},
  {name: 'b', inputs: {s: 'src/b.txt', a: {target: 'a'}}, outputs: {o: 'b.out'}, command: 'cat $in > $out'},
  {name: 'c', inputs: {b: {target: 'b'}}, outputs: {o: 'c.out'}, command: 'cp $in $out'},
]};
`,
    // Logs every module the CLI resolves (module.register's resolve hook).
    'trace/hooks.mjs': `import {appendFileSync} from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (process.env.PSY_TEST_MODULE_LOG) appendFileSync(process.env.PSY_TEST_MODULE_LOG, r.url + '\\n');
  return r;
}
`,
    'trace/register.mjs': `import {register} from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`,
    // And every CommonJS module it required.
    'trace/cjs.cjs': `const {appendFileSync} = require('node:fs');
const {pathToFileURL} = require('node:url');
process.on('exit', () => {
  const files = Object.keys(require.cache).filter((f) => !f.endsWith('cjs.cjs'));
  if (process.env.PSY_TEST_MODULE_LOG) appendFileSync(process.env.PSY_TEST_MODULE_LOG, files.map((f) => pathToFileURL(f).href + '\\n').join(''));
});
`,
  });
});
afterEach(() => rig.cleanup());

/** Let every file leave the racy window so a snapshot can be written. */
const settle = () => new Promise((r) => setTimeout(r, 2200));
const snapshots = () => ['default', 'c', 'a_b'].map((k) => rig.path(`cache/config/noop-build.config.ts-${k}.snap`));

/** `psy ARGS` with the modules it loaded (URLs relative to the repository's dist/). */
function traced(args: string[], env: NodeJS.ProcessEnv = {}): RunResult & {modules: string[]} {
  const log = rig.path('trace/modules.log');
  rmSync(log, {force: true});
  const r = rig.psy(args, {
    ...env,
    PSY_TEST_MODULE_LOG: log,
    NODE_OPTIONS: `--import ${rig.path('trace/register.mjs')} --require ${rig.path('trace/cjs.cjs')}`,
  });
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    // Nothing resolved.
  }
  const modules = [...new Set(text.split('\n').filter((u) => u !== ''))].map((u) =>
    u.replace(/^.*\/dist\//, '').replace(/^.*\/node_modules\//, 'node_modules/'),
  );
  return {...r, modules};
}

/** The same build answered twice: by the full check (no snapshot), then by the fast path. */
function bothWays(args: string[]): {full: RunResult; fast: RunResult & {modules: string[]}} {
  for (const s of snapshots()) rmSync(s, {force: true});
  const full = rig.psy(args);
  const fast = traced(args);
  return {full, fast};
}

const ENGINE = ['engine/build.js', 'engine/builder.js', 'engine/graph.js', 'engine/state-log.js', 'cli/commands/build.js'];

describe('no-op answered before the engine loads', () => {
  it('prints what the full check prints, with every output option, loading no engine module', async () => {
    rig.psy(['build']);
    rig.psy(['build', 'c']);
    rig.psy(['build', 'a', 'b']);
    await settle();
    const cases: string[][] = [
      ['build'],
      ['build', '-j2', '-k', '0'],
      ['build', '--verbose'],
      ['build', '--json'],
      ['build', 'c'],
      ['build', 'a', 'b', '--json', '-v'],
    ];
    for (const args of cases) {
      // The first full check after the settle writes the snapshot the fast path needs.
      rig.psy(args);
      const {full, fast} = bothWays(args);
      expect({args, code: full.code}).toEqual({args, code: 0});
      // --json moves the status (and --verbose's lines) to stderr.
      if (args.includes('--json') && !args.includes('-v')) expect(full.stderr).toBe('');
      expect({args, code: fast.code, stdout: fast.stdout, stderr: fast.stderr}).toEqual({args, code: 0, stdout: full.stdout, stderr: full.stderr});
      // One bundled CommonJS module from dist/ answers, with no ES module at all.
      expect(fast.modules.filter((m) => !m.startsWith('node:') && !m.startsWith('file:'))).toEqual(['cli/build-fast.bundle.cjs']);
      expect(fast.modules.filter((m) => m.endsWith('.js') || m.endsWith('.mjs'))).toEqual([expect.stringMatching(/\/bin\/psy\.js$/)]);
      for (const m of ENGINE) expect({args, loaded: fast.modules.includes(m)}).toEqual({args, loaded: false});
      // No content hashing either (the config is not racy any more).
      expect(fast.modules.filter((m) => m.includes('xxhash'))).toEqual([]);
    }
    expect(rig.psy(['build']).stdout).toBe('psy: no work to do (3 targets up to date)\n');
    expect(
      rig
        .psy(['build', '-v'])
        .stdout.split('\n')
        .filter((l) => l.startsWith('up to date: '))
        .sort(),
    ).toEqual(['up to date: a', 'up to date: b', 'up to date: c']);
  }, 90_000);

  it("writes its one line without creating the process's stdout or stderr stream", async () => {
    // Logs every use of process.stdout and process.stderr (creating one costs milliseconds)
    // and whether node:tty was loaded.
    rig.write({
      'trace/streams.cjs': `const {appendFileSync} = require('node:fs');
for (const name of ['stdout', 'stderr']) {
  const d = Object.getOwnPropertyDescriptor(process, name);
  Object.defineProperty(process, name, {...d, get() {
    appendFileSync(process.env.PSY_TEST_STREAM_LOG, name + '\\n');
    return d.get.call(this);
  }});
}
// node:tty brings node:net with it: milliseconds a no-op has no use for.
process.on('exit', () => {
  if (process.moduleLoadList.includes('NativeModule tty')) appendFileSync(process.env.PSY_TEST_STREAM_LOG, 'tty\\n');
});
`,
    });
    rig.psy(['build']);
    await settle();
    rig.psy(['build']);
    const log = rig.path('trace/streams.log');
    const run = (args: string[]) => {
      writeFileSync(log, '');
      const r = rig.psy(args, {PSY_TEST_STREAM_LOG: log, NODE_OPTIONS: `--require ${rig.path('trace/streams.cjs')}`});
      return {code: r.code, stdout: r.stdout, streams: readFileSync(log, 'utf8')};
    };
    expect(run(['build'])).toEqual({code: 0, stdout: 'psy: no work to do (3 targets up to date)\n', streams: ''});
    // Whether stdout is a terminal is asked of the descriptor (--verbose asks it).
    expect(run(['build', '-v']).streams).toBe('tty\n');
    // The preload does see a use: the rest of the CLI writes through the streams.
    expect(run(['--help']).streams).toMatch(/^stdout$/m);
  }, 60_000);

  it("without the bundle, the CLI answers from the fast path's modules", async () => {
    rig.psy(['build']);
    await settle();
    rig.psy(['build']);
    // What bin/psy.js does when dist/cli/build-fast.bundle.cjs is missing.
    const cli = pathToFileURL(join(repoRoot, 'dist', 'cli', 'psy.js')).href;
    const log = rig.path('trace/modules.log');
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        rig.path('trace/register.mjs'),
        '--input-type=module',
        '-e',
        `const {main} = await import(${JSON.stringify(cli)}); process.exitCode = await main(['build']);`,
      ],
      {
        cwd: rig.dir,
        encoding: 'utf8',
        env: {...process.env, PSY_TEST_MODULE_LOG: log},
      },
    );
    expect({code: r.status, stdout: r.stdout, stderr: r.stderr}).toEqual({code: 0, stdout: 'psy: no work to do (3 targets up to date)\n', stderr: ''});
    const modules = readFileSync(log, 'utf8');
    expect(modules).toContain('/dist/cli/build-fast.js');
    expect(modules).not.toContain('build-fast.bundle');
    for (const m of ENGINE) expect(modules).not.toContain(`/dist/${m}`);
  }, 60_000);

  it('--config FILE has its own snapshot and fast answer', async () => {
    rig.psy(['build', '--config', 'other.config.ts']);
    await settle();
    rig.psy(['build', '--config', 'other.config.ts']);
    const fast = traced(['build', '--config', 'other.config.ts']);
    expect(fast.stdout).toBe('psy: no work to do (1 target up to date)\n');
    for (const m of ENGINE) expect(fast.modules).not.toContain(m);
    // The default config's snapshot is another file: its first build is a full one.
    const first = traced(['build']);
    expect(startedSteps(first.stdout)).toEqual(['a', 'b', 'c']);
    // The build command and the engine, from their bundle.
    expect(first.modules).toContain('cli/build-run.bundle.cjs');
  }, 60_000);

  it('hands its check to the full build when something changed, which then rebuilds only the cone', async () => {
    rig.psy(['build']);
    await settle();
    rig.psy(['build']);
    writeFileSync(rig.path('src/b.txt'), 'b2\n');
    const r = traced(['build']);
    expect(startedSteps(r.stdout)).toEqual(['b', 'c']);
    expect(r.modules).toContain('cli/build-fast.bundle.cjs');
    expect(r.modules).toContain('cli/build-run.bundle.cjs');
    // Not from the modules: no ES module loader for the engine either.
    expect(r.modules).not.toContain('engine/build.js');
    // The full build did not check again: the unbundled fast path was not loaded.
    expect(r.modules).not.toContain('cli/build-fast.js');
    expect(rig.read('cache/out/c.out')).toBe('b2\na\n');
  }, 60_000);

  it('leaves dry runs, watch options and bad arguments to the build command', async () => {
    rig.psy(['build']);
    await settle();
    rig.psy(['build']);
    expect(rig.psy(['build']).stdout).toBe('psy: no work to do (3 targets up to date)\n');
    const dry = traced(['build', '-n']);
    expect(dry.stdout).toBe('psy: no work to do\n');
    expect(dry.modules).toContain('engine/build.js');
    const bad = rig.psy(['build', '-j', '0']);
    expect({code: bad.code, stderr: bad.stderr}).toEqual({code: 2, stderr: 'psy build: --jobs needs an integer ≥ 1, got "0"\n'});
    const unknown = rig.psy(['build', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('psy build: unknown option --bogus (see psy build --help)\n');
    const then = rig.psy(['build', '--then', 'true']);
    expect({code: then.code, stderr: then.stderr}).toEqual({code: 2, stderr: 'psy build: --then needs --watch (see psy build --help)\n'});
    expect(rig.psy(['build', '--help']).stdout).toMatch(/^Usage: psy build /);
  }, 60_000);

  it('a build holding the lock makes the fast no-op fail like the full one', async () => {
    rig.psy(['build']);
    await settle();
    rig.psy(['build']);
    // A live process (this test's) holds the lock.
    writeFileSync(rig.path('cache/state/lock'), `${process.pid}\n`);
    const r = traced(['build']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`psy build: another psy build (pid ${process.pid}) is using ${rig.path('cache/state')}; wait for it to finish or stop it\n`);
    for (const m of ENGINE) expect(r.modules).not.toContain(m);
    rmSync(rig.path('cache/state/lock'));
    expect(rig.psy(['build']).stdout).toBe('psy: no work to do (3 targets up to date)\n');
  }, 60_000);
});

describe('the bundles', () => {
  it('a module changed after the bundles were made (tsc alone) runs as changed, not from the old bundle', async () => {
    rig.psy(['build']);
    await settle();
    rig.psy(['build']);
    // A copy of the CLI, so that its modules can change under its bundles.
    const copy = rig.path('psy-copy');
    for (const d of ['bin', 'dist']) cpSync(join(repoRoot, d), join(copy, d), {recursive: true, preserveTimestamps: true});
    cpSync(join(repoRoot, 'package.json'), join(copy, 'package.json'));
    symlinkSync(join(repoRoot, 'node_modules'), join(copy, 'node_modules'));
    const run = () => spawnSync(process.execPath, [join(copy, 'bin', 'psy.js'), 'build'], {cwd: rig.dir, encoding: 'utf8'}).stdout;
    expect(run()).toBe('psy: no work to do (3 targets up to date)\n');
    const report = join(copy, 'dist', 'cli', 'build-report.js');
    writeFileSync(report, readFileSync(report, 'utf8').replaceAll('no work to do', 'nothing changed'));
    expect(run()).toBe('psy: nothing changed (3 targets up to date)\n');
    writeFileSync(rig.path('src/a.txt'), 'a2\n');
    expect(startedSteps(run())).toEqual(['a', 'b', 'c']);
  }, 60_000);
});

describe('config manifest', () => {
  it('records a racy module again once it is old enough, so no-ops stop reading it', async () => {
    const manifest = () =>
      JSON.parse(readFileSync(rig.path('cache/config/manifest-build.config.ts.json'), 'utf8')) as {modules: Array<{recordedAt: number; mtimeMs: number}>};
    rig.psy(['build']);
    // Compiled right after it was written: racy, its content is read on every check.
    const first = manifest().modules[0]!;
    expect(first.recordedAt - first.mtimeMs).toBeLessThanOrEqual(2000);
    await settle();
    rig.psy(['build']);
    const second = manifest().modules[0]!;
    expect(second.recordedAt - second.mtimeMs).toBeGreaterThan(2000);
    // Now trusted by its stat: not rewritten, nothing hashed.
    const r = traced(['build']);
    expect(r.stdout).toBe('psy: no work to do (3 targets up to date)\n');
    expect(r.modules.filter((m) => m.includes('xxhash'))).toEqual([]);
    expect(manifest().modules[0]!.recordedAt).toBe(second.recordedAt);
    // An edit is still seen.
    writeFileSync(rig.path('build.config.ts'), readFileSync(rig.path('build.config.ts'), 'utf8').replace("'cp $in $out'},\n]", "'cat $in > $out'},\n]"));
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['c']);
  }, 60_000);
});

describe('no-op of glob inputs and directory outputs', () => {
  // The shape of the psyopsOS graph: a glob over a source tree, a directory output read downstream.
  const config = `export default {targets: [
  {name: 'tree', inputs: {s: {glob: 'src/**/*.txt'}}, outputs: {d: {dir: 'tree'}}, command: 'mkdir -p $out/sub && cat $in > $out/sub/all && ln -s sub/all $out/link'},
  {name: 'sum', inputs: {t: {target: 'tree'}}, outputs: {o: 'sum.out'}, command: 'cat $in/sub/all > $out'},
]};
`;
  const snapshot = () => rig.path('cache/config/noop-build.config.ts-default.snap');

  async function fresh(): Promise<void> {
    rig.write({'build.config.ts': config, 'src/deep/c.txt': 'c\n'});
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['tree', 'sum']);
    await settle();
    rig.psy(['build']);
    const fast = traced(['build']);
    expect(fast.stdout).toBe('psy: no work to do (2 targets up to date)\n');
    for (const m of ENGINE) expect(fast.modules).not.toContain(m);
  }

  it('answers before the engine loads', async () => {
    await fresh();
    expect(readFileSync(snapshot()).length).toBeGreaterThan(0);
  }, 60_000);

  it('a file added where a glob looks (in a new folder too) or removed rebuilds', async () => {
    await fresh();
    rig.write({'src/new/n.txt': 'n\n'});
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['tree', 'sum']);
    expect(rig.read('cache/out/sum.out')).toBe('a\nb\nc\nn\n');
    await settle();
    rig.psy(['build']);
    rmSync(rig.path('src/new/n.txt'));
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['tree', 'sum']);
    expect(rig.read('cache/out/sum.out')).toBe('a\nb\nc\n');
  }, 60_000);

  /** `psy explain` and `psy build -n` of `target`, checked to agree: the targets that would run. */
  function verdicts(target: string): string[] {
    const e = rig.psy(['explain', '--json', target]);
    expect(e.code, e.stderr).toBe(0);
    const d = rig.psy(['build', '-n', '--json', target]);
    expect(d.code, d.stderr).toBe(0);
    const explain = JSON.parse(e.stdout) as {stale: boolean; chain: Array<{target: string; reason: string}>};
    const wouldRun = (JSON.parse(d.stdout) as {wouldRun: Array<{target: string; reason: string}>}).wouldRun;
    for (const step of explain.chain) expect(wouldRun.find((w) => w.target === step.target)?.reason).toBe(step.reason);
    expect(explain.stale).toBe(wouldRun.some((w) => w.target === target));
    return wouldRun.map((w) => w.target).sort();
  }

  /** Out of the racy window, the tree's record and the snapshot trusted again: a fast no-op. */
  async function trusted(): Promise<void> {
    await settle();
    rig.psy(['build']);
    expect(traced(['build']).stdout).toBe('psy: no work to do (2 targets up to date)\n');
  }

  it('a file edited in place inside a directory output is trusted, by the fast and the full check alike', async () => {
    await fresh();
    writeFileSync(rig.path('cache/out/tree/sub/all'), 'tampered\n');
    expect(verdicts('sum')).toEqual([]);
    expect(rig.psy(['build', '-n']).stdout).toBe('psy: no work to do\n');
    const fast = traced(['build']);
    expect(fast.stdout).toBe('psy: no work to do (2 targets up to date)\n');
    for (const m of ENGINE) expect(fast.modules).not.toContain(m);
    expect(rig.read('cache/out/tree/sub/all')).toBe('tampered\n');
    // psy clean is how an output edited by hand is made again.
    expect(rig.psy(['clean', 'tree']).code).toBe(0);
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['tree']);
    expect(rig.read('cache/out/tree/sub/all')).toBe('a\nb\nc\n');
  }, 60_000);

  it('an entry added, renamed or removed inside a directory output, or the tree replaced, is seen by both checks', async () => {
    await fresh();
    const changes: Array<[string, () => void]> = [
      ['added deep inside', () => writeFileSync(rig.path('cache/out/tree/sub/extra'), 'x\n')],
      ['renamed', () => renameSync(rig.path('cache/out/tree/sub/all'), rig.path('cache/out/tree/sub/all2'))],
      ['removed (a link)', () => rmSync(rig.path('cache/out/tree/link'))],
      [
        'the tree replaced by a copy with an edited file',
        () => {
          cpSync(rig.path('cache/out/tree'), rig.path('cache/out/tree.new'), {recursive: true, verbatimSymlinks: true, preserveTimestamps: true});
          writeFileSync(rig.path('cache/out/tree.new/sub/all'), 'tampered\n');
          rmSync(rig.path('cache/out/tree'), {recursive: true});
          renameSync(rig.path('cache/out/tree.new'), rig.path('cache/out/tree'));
        },
      ],
    ];
    for (const [what, change] of changes) {
      await trusted();
      change();
      // The tree rebuilds; sum reads the same bytes again, so it stays up to date (early cutoff).
      expect({what, dryRun: verdicts('sum')}).toEqual({what, dryRun: ['sum', 'tree']});
      expect({what, ran: startedSteps(rig.psy(['build']).stdout)}).toEqual({what, ran: ['tree']});
      expect(rig.read('cache/out/tree/sub/all')).toBe('a\nb\nc\n');
      expect(readdirSync(rig.path('cache/out/tree')).sort()).toEqual(['link', 'sub']);
    }
  }, 60_000);

  it('a tree a cone build rebuilt with a new folder: an entry added there is seen by both checks', async () => {
    // Shell commands without globs: an edit is rebuilt as a cone build from the cached graph.
    rig.write({
      'build.config.ts': `export default {targets: [
  {name: 'tree', inputs: {n: 'src/n.txt'}, outputs: {d: {dir: 'tree'}}, command: 'd=$out/$(cat $in) && mkdir -p $d && echo x > $d/f'},
  {name: 'sum', inputs: {t: {target: 'tree'}}, outputs: {o: 'sum.out'}, command: 'ls -R $in > $out'},
]};
`,
      'src/n.txt': '.\n',
    });
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['tree', 'sum']);
    await trusted();
    writeFileSync(rig.path('src/n.txt'), 'sub\n');
    const cone = traced(['build']);
    expect(startedSteps(cone.stdout)).toEqual(['tree', 'sum']);
    expect(cone.modules).toContain('cli/build-run.bundle.cjs');
    await trusted();
    writeFileSync(rig.path('cache/out/tree/sub/extra'), 'x\n');
    expect(verdicts('sum')).toEqual(['sum', 'tree']);
    expect(startedSteps(rig.psy(['build']).stdout)).toEqual(['tree']);
    expect(readdirSync(rig.path('cache/out/tree/sub'))).toEqual(['f']);
  }, 60_000);
});
