/**
 * neuralupgrade's output into a pipe, under Node and under the offline image's runtime
 * stand-in (Bun, whose stream writes throw EPIPE at the caller): a reader gets the whole
 * answer, and a reader that stops early ends the output quietly with the command's status.
 */
import {execFile} from 'node:child_process';
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {downloadBun} from './fixtures/glibc-stand-ins.js';
import {repoRoot} from './helpers/shared-data.js';
import {UpgradeRig} from './helpers/upgrade-rig.js';

const exec = promisify(execFile);
const bin = join(repoRoot, 'bin', 'neuralupgrade.js');

describe('neuralupgrade --json into a pipe', () => {
  let rig: UpgradeRig;
  let img: string;
  let bun: string;

  beforeAll(async () => {
    await exec('npm', ['run', 'build'], {cwd: repoRoot});
    rig = new UpgradeRig('upgrade-cli-pipes');
    img = await rig.image('disk.img');
    const tgz = await downloadBun(join(repoRoot, 'cache', 'fixtures'));
    const dir = join(rig.dir, 'bun');
    mkdirSync(dir);
    await exec('tar', ['-xzf', tgz, '-C', dir, 'package/bin/bun']);
    bun = join(dir, 'package', 'bin', 'bun');
  }, 300_000);
  afterAll(() => rig.cleanup());

  /** Runs `RUNTIME neuralupgrade ARGS | READER` in sh; the writer's status and stderr come back through files. */
  async function piped(runtime: string, reader: string, delay = 0): Promise<{read: string; status: number; stderr: string}> {
    const rc = join(rig.dir, 'rc');
    const err = join(rig.dir, 'err');
    writeFileSync(rc, '');
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const args = ['--disk', img, '--pubkey', rig.pubkeyPath, 'status', '--json'].map(q).join(' ');
    const script = `(sleep ${delay}; ${q(runtime)} ${q(bin)} ${args} 2>${q(err)}; echo $? >${q(rc)}) | ${reader}`;
    const {stdout} = await exec('sh', ['-c', script], {maxBuffer: 1 << 24});
    return {read: stdout, status: Number(readFileSync(rc, 'utf8').trim()), stderr: readFileSync(err, 'utf8')};
  }

  for (const name of ['node', 'bun'] as const) {
    const runtime = () => (name === 'node' ? process.execPath : bun);

    it(`${name}: a reader gets the whole answer`, async () => {
      const r = await piped(runtime(), 'cat');
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const status = JSON.parse(r.read) as {slots: Record<string, unknown>; nextBoot: {boots: string}};
      expect(Object.keys(status.slots).sort()).toEqual(['A', 'B']);
      expect(status.nextBoot.boots).toBe('A');
    }, 60_000);

    it(`${name}: a reader that stops after one byte ends the output quietly`, async () => {
      const r = await piped(runtime(), 'head -c1');
      expect(r.read).toBe('{');
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }, 60_000);

    it(`${name}: a reader gone before the first write ends the output quietly`, async () => {
      const r = await piped(runtime(), 'true', 0.5);
      expect(r.read).toBe('');
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }, 60_000);
  }
});
