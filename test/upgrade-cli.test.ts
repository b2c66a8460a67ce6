import {execFile} from 'node:child_process';
import {readFileSync, symlinkSync} from 'node:fs';
import {basename, join} from 'node:path';
import {promisify} from 'node:util';
import {PutObjectCommand} from '@aws-sdk/client-s3';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {repoRoot} from './helpers/shared-data.js';
import {S3RVER_ENV, startS3rver, testClient, type S3rverProcess} from './helpers/deaddrop-s3rver.js';
import {UpgradeRig} from './helpers/upgrade-rig.js';

const exec = promisify(execFile);
const bin = join(repoRoot, 'bin', 'neuralupgrade.js');

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function nu(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  try {
    const r = await exec(process.execPath, [bin, ...args], {env: {...process.env, ...env}, maxBuffer: 1 << 24});
    return {code: 0, stdout: r.stdout, stderr: r.stderr};
  } catch (err) {
    const e = err as {code: number; stdout: string; stderr: string};
    return {code: e.code, stdout: e.stdout, stderr: e.stderr};
  }
}

describe('neuralupgrade command line', () => {
  let rig: UpgradeRig;
  let img: string;
  let s3: S3rverProcess;
  const V1 = '20250101-000000';
  const V2 = '20250202-000000';
  const V3 = '20250303-000000';

  beforeAll(async () => {
    await exec('npm', ['run', 'build'], {cwd: repoRoot});
    rig = new UpgradeRig('upgrade-cli');
    img = await rig.image();
    s3 = await startS3rver(join(rig.dir, 's3'), ['deaddrop']);
  });
  afterAll(async () => {
    await s3?.stop();
    rig?.cleanup();
  });

  it('prints help and rejects unknown commands in one line', async () => {
    const help = await nu(['--help']);
    expect(help.code).toBe(0);
    for (const c of ['show', 'check', 'download', 'apply', 'set-default', 'mark-good', 'status']) expect(help.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    const bad = await nu(['frobnicate']);
    expect(bad).toMatchObject({code: 2, stderr: "neuralupgrade: unknown command 'frobnicate' (see neuralupgrade --help)\n"});
  });

  it('builds an image the way the diskimg build does, then updates it from a replica and from S3', async () => {
    const g = ['--disk', img, '--pubkey', rig.pubkeyPath];
    const os1 = await rig.ostar(V1, {dir: join(rig.dir, 'local')});
    const esp1 = await rig.esptar(V1, {dir: join(rig.dir, 'local')});
    let r = await nu(['apply', 'a', 'b', 'efisys', '--os-tar', os1, '--esp-tar', esp1.path, '--default', 'A', ...g]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('psyopsOS-A: version 20250101-000000 written and verified');
    expect(r.stdout).toContain('psyopsOS-B: version 20250101-000000 written and verified');
    r = await nu(['mark-good', '--slot', 'A', ...g]);
    expect(r.stdout).toContain('high-water mark 20250101-000000');

    r = await nu(['status', '--json', '--verify', ...g]);
    const st = JSON.parse(r.stdout);
    expect(st.slots.A.condition).toBe('verified');
    expect(st.slots.B.condition).toBe('verified');
    expect(st.nextBoot.boots).toBe('A');
    expect(st.esp.version).toBe(V1);

    // a replica folder with a latest symlink: the node (booted A) applies to nonbooted
    const replica = join(rig.dir, 'replica');
    await rig.ostar(V2, {dir: replica});
    symlinkSync(`psyopsOS.x86_64.${V2}.tar.minisig`, join(replica, 'psyopsOS.x86_64.latest.tar.minisig'));
    r = await nu(['check', '--booted', 'A', '--repository', replica, '--target', 'nonbooted', ...g]);
    expect(r).toMatchObject({code: 1});
    expect(r.stdout).toContain(`psyopsOS-B: currently ${V1}, repository has ${V2}`);
    r = await nu(['apply', 'nonbooted', '--booted', 'A', '--repository', replica, '--os-version', 'latest', ...g]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('next boot tries psyopsOS-B once');
    r = await nu(['status', '--booted', 'A', ...g]);
    expect(r.stdout).toMatch(/^next boot: psyopsOS-B \(known-good psyopsOS-A .*trying psyopsOS-B once\)$/m);
    expect(r.stdout).toMatch(/^if that boot fails: psyopsOS-A$/m);
    r = await nu(['mark-good', '--booted', 'B', ...g]);
    expect(r.stdout).toBe(`psyopsOS-B (version ${V2}) is the default; high-water mark ${V2}\n`);

    // S3: the latest object is a zero-byte redirect, as the deaddrop publishes it
    const client = testClient(s3.endpoint);
    const os3 = await rig.ostar(V3, {dir: join(rig.dir, 's3src')});
    for (const f of [os3, `${os3}.minisig`]) {
      await client.send(new PutObjectCommand({Bucket: 'deaddrop', Key: `os/${basename(f)}`, Body: readFileSync(f)}));
    }
    await client.send(
      new PutObjectCommand({
        Bucket: 'deaddrop',
        Key: 'os/psyopsOS.x86_64.latest.tar.minisig',
        Body: Buffer.alloc(0),
        WebsiteRedirectLocation: `/os/${basename(os3)}.minisig`,
      }),
    );
    const s3args = ['--repository', 's3://deaddrop/os', '--s3-endpoint', s3.endpoint];
    r = await nu(['show', '--booted', 'B', ...s3args, ...g], S3RVER_ENV);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`latest psyopsOS: ${V3} (psyopsOS.x86_64.${V3}.tar)`);
    r = await nu(['download', ...s3args, '--pubkey', rig.pubkeyPath, join(rig.dir, 'dl')], S3RVER_ENV);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(rig.dir, 'dl', basename(os3))).equals(readFileSync(os3))).toBe(true);
    r = await nu(['apply', 'nonbooted', '--booted', 'B', '--os-version', 'latest', ...s3args, ...g], S3RVER_ENV);
    expect(r.code, r.stderr).toBe(0);
    r = await nu(['status', '--json', '--booted', 'B', ...g]);
    expect(JSON.parse(r.stdout).nextBoot).toMatchObject({boots: 'A', knownGood: 'B', trySpent: true});
    expect(JSON.parse(r.stdout).slots.A.version).toBe(V3);
  });

  it('refuses with one line, no stack, and a non-zero exit', async () => {
    const g = ['--disk', img, '--pubkey', rig.pubkeyPath];
    const old = await rig.ostar('20200101-000000', {dir: join(rig.dir, 'old')});
    const r = await nu(['apply', 'nonbooted', '--booted', 'B', '--os-tar', old, ...g]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^neuralupgrade apply: .*version 20200101-000000 is not above the installed high-water mark/);
    const usage = await nu(['apply', 'nonbooted', 'a', '--booted', 'B', '--os-tar', old, ...g]);
    expect(usage).toMatchObject({code: 2, stderr: 'neuralupgrade apply: nonbooted cannot be combined with a or b\n'});
    const live = await nu(['status', '--cmdline', join(rig.dir, 'no-such-cmdline'), '--pubkey', rig.pubkeyPath]);
    expect(live).toMatchObject({code: 1});
    expect(live.stderr).toMatch(/^neuralupgrade status: cannot read .*no-such-cmdline\n$/);
  });
});
