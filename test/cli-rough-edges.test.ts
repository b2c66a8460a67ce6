import {spawn, spawnSync} from 'node:child_process';
import {createServer} from 'node:http';
import type {AddressInfo} from 'node:net';
import {mkdirSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {PassThrough} from 'node:stream';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {StatusPrinter} from '../src/cli/status.js';
import {Rig} from './helpers/engine-rig.js';
import {repoRoot} from './helpers/shared-data.js';

let rig: Rig;
beforeEach(() => {
  rig = new Rig();
});
afterEach(() => rig.cleanup());

const twoAndAGroup = {
  'build.config.ts': `export default {targets: [
    {name: 'a', description: 'copy a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'echo said by a; cp $in $out'},
    {name: 'b', inputs: {s: 'src/a.txt'}, outputs: {o: 'b.txt'}, command: 'sleep 0.3; echo said by b; cp $in $out'},
    {name: 'all', inputs: {a: {target: 'a'}, b: {target: 'b'}}},
  ]};\n`,
  'src/a.txt': 'a\n',
};

function capture() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (b: Buffer) => (text += b.toString()));
  return {out, text: () => text};
}

function neuralupgrade(args: string[]) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'neuralupgrade.js'), ...args], {cwd: rig.dir, encoding: 'utf8'});
  return {code: r.status, stdout: r.stdout, stderr: r.stderr};
}

describe('the build report', () => {
  it('counts steps up to the total, names targets as explain takes them, heads output with its target', () => {
    rig.write(twoAndAGroup);
    const r = rig.psy(['build', '-j2', 'all']);
    expect(r.code, r.stderr).toBe(0);
    const counts = [...r.stdout.matchAll(/^\[(\d+)\/(\d+)\] /gm)].map((m) => [Number(m[1]), Number(m[2])]);
    // Two steps; the group is no step of its own.
    expect(counts.every(([, total]) => total === 2)).toBe(true);
    expect(Math.max(...counts.map(([n]) => n!))).toBe(2);
    expect(r.stdout).toMatch(/^\[\d\/2\] a: copy a$/m);
    expect(r.stdout).toMatch(/^\[\d\/2\] b$/m);
    // b's output comes after a started, so it is headed by b's name; a's line is never
    // directly above b's output.
    const lines = r.stdout.trimEnd().split('\n');
    for (const [target, said] of [
      ['a', 'said by a'],
      ['b', 'said by b'],
    ] as const) {
      const above = lines[lines.indexOf(said) - 1]!;
      expect([`output of ${target}:`, ...lines.filter((l) => new RegExp(`^\\[\\d/2\\] ${target}(:|$)`).test(l))]).toContain(above);
    }
  });

  it("on a terminal the last status line stays, and a step's output is headed by its name", () => {
    const c = capture();
    const s = new StatusPrinter({out: c.out, tty: true, verbose: false, columns: 80});
    s.event({type: 'plan', total: 2});
    s.event({type: 'start', target: 'a', description: 'a', reason: 'never built', console: false});
    s.event({type: 'start', target: 'b', description: 'b', reason: 'never built', console: false});
    s.event({type: 'finish', target: 'a', durationMs: 1, output: 'hello\n', console: false});
    s.event({type: 'finish', target: 'b', durationMs: 1, output: '', console: false});
    s.close();
    expect(c.text()).toContain('output of a:\nhello\n');
    expect(c.text().endsWith('\r\x1b[K[2/2] b\n')).toBe(true);
  });

  it('counts agree with their nouns', () => {
    rig.write({
      'build.config.ts': `export default {targets: [{name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'}]};\n`,
      'src/a.txt': 'a\n',
    });
    expect(rig.psy(['build']).code).toBe(0);
    expect(rig.psy(['build']).stdout).toBe('psy: no work to do (1 target up to date)\n');
  });

  it("lists outputs only of targets that are made, with each step's times in --json and in build.log", () => {
    rig.write({
      'build.config.ts': `export default {targets: [
        {name: 'ok', inputs: {s: 'src/a.txt'}, outputs: {o: 'ok.txt'}, command: 'cp $in $out'},
        {name: 'bad', inputs: {s: 'src/a.txt'}, outputs: {o: 'bad.txt'}, command: 'exit 3'},
        {name: 'after', inputs: {b: {target: 'bad'}}, outputs: {o: 'after.txt'}, command: 'cp $in $out'},
      ]};\n`,
      'src/a.txt': 'a\n',
    });
    const r = rig.psy(['build', '-k', '0', '--json']);
    expect(r.code).toBe(1);
    const res = JSON.parse(r.stdout) as {outputs: Record<string, unknown>; steps: Array<{target: string; start: number; end: number; durationMs: number}>};
    expect(Object.keys(res.outputs)).toEqual(['ok']);
    expect(res.steps.map((s) => s.target)).toEqual(['ok']);
    const step = res.steps[0]!;
    expect(step.end - step.start).toBe(step.durationMs);
    expect(step.durationMs).toBeGreaterThanOrEqual(0);
    const log = rig.read('cache/state/build.log').split('\n');
    expect(log[0]).toMatch(/^# psy build log v1: start_ms end_ms duration_ms target key/);
    expect(log[1]).toMatch(new RegExp(`^${step.start}\\t${step.end}\\t${step.durationMs}\\tok\\t[0-9a-f]+$`));
    expect(log.length).toBe(3);
  });
});

describe('command-line details', () => {
  it('-C DIR runs as if started in DIR, on the fast no-op path too', () => {
    rig.write({
      'proj/build.config.ts': `export default {targets: [{name: 'a', inputs: {s: 'a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'}]};\n`,
      'proj/a.txt': 'a\n',
    });
    const first = rig.psy(['-C', 'proj', 'build']);
    expect(first.code, first.stderr).toBe(0);
    expect(rig.read('proj/cache/out/a.txt')).toBe('a\n');
    expect(rig.psy(['-C', 'proj', 'build'])).toMatchObject({code: 0, stdout: 'psy: no work to do (1 target up to date)\n'});
    expect(rig.psy(['-Cproj', 'targets']).stdout).toBe('  a\n');
    expect(rig.psy(['--directory=proj', 'explain', 'a']).stdout).toBe('a: up to date\n');
    expect(rig.psy(['-C', 'nosuch', 'build'])).toMatchObject({code: 2, stderr: 'psy: -C nosuch: no such directory\n'});
    expect(rig.psy(['-C'])).toMatchObject({code: 2, stderr: 'psy: option -C needs a directory (see psy --help)\n'});
  });

  it('finds build.config.mjs and build.config.js (and the local modules they import)', () => {
    for (const name of ['build.config.mjs', 'build.config.js']) {
      const dir = `p-${name}`;
      rig.write({
        [`${dir}/package.json`]: '{"type": "module"}\n',
        [`${dir}/${name}`]: `import {targets} from './targets/all.js';\nexport default {targets};\n`,
        [`${dir}/targets/all.js`]: `export const targets = [{name: 'a', inputs: {s: 'a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'}];\n`,
        [`${dir}/a.txt`]: 'a\n',
      });
      const r = rig.psy(['-C', dir, 'build']);
      expect(r.code, r.stderr).toBe(0);
      expect(rig.read(`${dir}/cache/out/a.txt`)).toBe('a\n');
      expect(rig.psy(['-C', dir, 'build']).stdout).toBe('psy: no work to do (1 target up to date)\n');
    }
  });

  it('option mistakes are one line naming the option', () => {
    rig.write({'build.config.ts': 'export default {targets: []};\n'});
    const cases: Array<[string[], string]> = [
      [['build', '--bogus'], 'psy build: unknown option --bogus (see psy build --help)'],
      [['build', '--jsn'], 'psy build: unknown option --jsn (did you mean "--json"?) (see psy build --help)'],
      [['build', '-j'], 'psy build: option --jobs needs a value (see psy build --help)'],
      [['build', '--json=yes'], 'psy build: option --json takes no value (see psy build --help)'],
      [['targets', 'extra'], "psy targets: unexpected argument 'extra': this command takes none (see psy targets --help)"],
      [['deaddrop'], 'psy deaddrop: a subcommand is needed: forcepush, forcepull or serve (see psy deaddrop --help)'],
      [['biuld'], 'psy: unknown command \'biuld\' (did you mean "build"?)'],
    ];
    for (const [args, line] of cases) {
      const r = rig.psy(args);
      expect({args, code: r.code, stderr: r.stderr}).toEqual({args, code: 2, stderr: `${line}\n`});
    }
    expect(neuralupgrade(['status', '--bogus'])).toMatchObject({
      code: 2,
      stderr: 'neuralupgrade status: unknown option --bogus (see neuralupgrade status --help)\n',
    });
  });

  it('every help text gives the exit statuses, usage error 2 included', () => {
    const top = rig.psy(['--help']);
    expect(top.stdout).toMatch(/2 usage error/);
    const commands = [...top.stdout.matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1]!);
    expect(commands).toContain('verify');
    for (const c of commands) {
      const r = rig.psy([c, '--help']);
      expect({c, ok: /^Exit status: .*\b2 usage error/m.test(r.stdout)}).toEqual({c, ok: true});
    }
    expect(neuralupgrade(['--help']).stdout).toMatch(/^Exit status: .*\b2 usage error/m);
    expect(neuralupgrade(['apply', '--help']).stdout).toMatch(/^Exit status: .*\b2 usage error/m);
  });

  it('neuralupgrade errors are JSON under --json', () => {
    const missing = neuralupgrade(['status', '--json', '--disk', join(rig.dir, 'no-such.img')]);
    expect(missing.code).toBe(1);
    const err = (JSON.parse(missing.stdout) as {error: {code: string; message: string; status: number}}).error;
    expect(err.status).toBe(1);
    expect(err.message).toContain('no-such.img');
    expect(missing.stderr).toBe(`neuralupgrade status: ${err.message}\n`);
    const usage = neuralupgrade(['status', '--json', '--booted', 'C']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stdout)).toEqual({error: {code: 'usage', message: "--booted: 'C' is not a slot (A, B, psyopsOS-A or psyopsOS-B)", status: 2}});
  });
});

describe('psy verify', () => {
  it('refuses the development key unless --dev-key, and prints JSON with --json', () => {
    rig.write({'os.tar': 'the os\n'});
    expect(rig.psy(['sign', '-t', 'type=psyopsOS version=1', 'os.tar']).code).toBe(0);
    const refused = rig.psy(['verify', 'os.tar']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      'psy verify: no public key configured; give --public-key FILE (or PSY_SIGNING_PUBKEY, settings.signing.publicKey), or --dev-key to trust the development key cache/signing/dev.pub\n',
    );
    const ok = rig.psy(['verify', '--dev-key', '--json', 'os.tar']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/development key/);
    const v = JSON.parse(ok.stdout) as {file: string; keyId: string; trustedComment: string; fields: Record<string, string>};
    expect(v).toMatchObject({file: 'os.tar', trustedComment: 'type=psyopsOS version=1', fields: {type: 'psyopsOS', version: '1'}});
    expect(v.keyId).toMatch(/^[0-9A-F]{16}$/);
  });
});

describe('psy lock', () => {
  it('shows each download on stderr when it is not a terminal', async () => {
    const server = createServer((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      mkdirSync(rig.path('keys'));
      writeFileSync(
        rig.path('build.config.ts'),
        `export default {targets: [], settings: {alpine: {release: 'v3.20', arch: 'x86_64', repositories: ['${url}/v3.20/main', '${url}/v3.20/community'], keys: 'keys', world: ['busybox']}}};\n`,
      );
      const child = spawn(process.execPath, [join(repoRoot, 'bin', 'psy.js'), 'lock'], {cwd: rig.dir, stdio: ['ignore', 'pipe', 'pipe']});
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const code = await new Promise<number | null>((ok) => child.on('close', ok));
      expect(code).toBe(1);
      const lines = stderr.trimEnd().split('\n');
      expect(lines.slice(0, 2).sort()).toEqual(
        [`psy lock: [1] fetch ${url}/v3.20/main/x86_64/APKINDEX.tar.gz`, `psy lock: [2] fetch ${url}/v3.20/community/x86_64/APKINDEX.tar.gz`].sort(),
      );
      expect(lines[2]).toBe(`psy lock: cannot download ${url}/v3.20/main/x86_64/APKINDEX.tar.gz: HTTP 404 Not Found`);
    } finally {
      server.close();
    }
  });
});
