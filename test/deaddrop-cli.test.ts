import {HeadObjectCommand, ListObjectsV2Command} from '@aws-sdk/client-s3';
import {lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {writeConfig, writeProject} from './helpers/deaddrop-project.js';
import {S3RVER_ENV, startS3rver, testClient, type S3rverProcess} from './helpers/deaddrop-s3rver.js';

let server: S3rverProcess;
let serverDir: string;
let dir: string;
let n = 0;
let bucket: string;

beforeAll(async () => {
  assertBuilt();
  serverDir = mkdtempSync(join(tmpdir(), 'psy-s3rver-'));
  server = await startS3rver(
    serverDir,
    Array.from({length: 6}, (_, i) => `cli${i}`),
  );
});
afterAll(async () => {
  await server.stop();
  rmSync(serverDir, {recursive: true, force: true});
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-publish-cli-'));
  bucket = `cli${n++}`;
});
afterEach(() => {
  rmSync(dir, {recursive: true, force: true});
});

const deaddrop = (extra: Record<string, unknown> = {}) => ({
  keep: 2,
  ostar: {target: 'ostar', arch: 'x86_64'},
  esptar: {target: 'esptar', platform: 'x86_64-uefi'},
  apk: {target: 'apkrepo'},
  s3: {bucket, endpoint: server.endpoint, region: 'us-east-1'},
  ...extra,
});

function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string, pre: string): void => {
    for (const e of readdirSync(d, {withFileTypes: true}).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (e.name.startsWith('.psy-')) continue;
      if (e.isDirectory()) walk(join(d, e.name), `${pre}${e.name}/`);
      else if (e.isSymbolicLink()) out.push(`${pre}${e.name} -> ${readlinkSync(join(d, e.name))}`);
      else out.push(`${pre}${e.name} ${readFileSync(join(d, e.name)).length}`);
    }
  };
  walk(root, '');
  return out;
}

describe('psy publish with a synthetic config', () => {
  it('builds, publishes, pushes; unchanged publishes make nothing new; forcepull mirrors it', async () => {
    writeProject(dir, deaddrop());
    const p1 = await psy(['publish'], dir, S3RVER_ENV);
    expect(p1.code, p1.stderr).toBe(0);
    expect(p1.stderr).toMatch(/warning: no signing key configured, using the development key cache\/signing\/dev\.key; it must not sign releases/);
    expect(p1.stdout).toMatch(/: 2 new versions, 0 unchanged, 2 APK files copied, 0 files pruned$/m);
    expect(p1.stdout).toMatch(new RegExp(`^s3://${bucket}/: 6 uploaded \\(\\d+ bytes\\), 2 redirects, 0 deleted, 0 unchanged$`, 'm'));
    const replica = join(dir, 'cache', 'deaddrop');
    const t1 = tree(replica);
    expect(t1.filter((l) => l.includes('latest'))).toEqual([
      expect.stringMatching(/^os\/psyopsESP\.x86_64-uefi\.latest\.tar\.minisig -> psyopsESP\.x86_64-uefi\.\d{8}-\d{6}\.tar\.minisig$/),
      expect.stringMatching(/^os\/psyopsOS\.x86_64\.latest\.tar\.minisig -> psyopsOS\.x86_64\.\d{8}-\d{6}\.tar\.minisig$/),
    ]);
    const v = await psy(
      [
        'verify',
        '--dev-key',
        '--expect',
        'type=psyopsOS',
        '--expect',
        'kernel=6.6.36-0-lts',
        join(replica, 'os', readlinkSync(join(replica, 'os', 'psyopsOS.x86_64.latest.tar.minisig')).replace(/\.minisig$/, '')),
      ],
      dir,
    );
    expect(v.code, v.stderr).toBe(0);

    const p2 = await psy(['publish'], dir, S3RVER_ENV);
    expect(p2.code, p2.stderr).toBe(0);
    expect(p2.stdout).toMatch(/: 0 new versions, 2 unchanged, 0 APK files copied, 0 files pruned$/m);
    expect(p2.stdout).toMatch(/: 0 uploaded \(0 bytes\), 0 redirects, 0 deleted, 8 unchanged$/m);
    expect(tree(replica)).toEqual(t1);

    writeFileSync(join(dir, 'os', 'kernel.version'), '6.6.40-0-lts\n');
    const stale = await psy(['publish', '--no-build', '--no-sync'], dir, S3RVER_ENV);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^psy publish: --no-build, but these targets are stale: ostar$/m);
    expect(tree(replica)).toEqual(t1);
    const dry = await psy(['deaddrop', 'forcepush', '--dry-run'], dir, S3RVER_ENV);
    expect(dry.stdout).toBe('0 actions, 8 unchanged (dry run, nothing changed)\n');
    const p3 = await psy(['publish'], dir, S3RVER_ENV);
    expect(p3.code, p3.stderr).toBe(0);
    expect(p3.stdout).toMatch(/: 1 new version, 1 unchanged/m);
    expect(p3.stdout).toMatch(/: 2 uploaded \(\d+ bytes\), 1 redirect, 0 deleted, 7 unchanged$/m);
    const head = await testClient(server.endpoint).send(new HeadObjectCommand({Bucket: bucket, Key: 'os/psyopsOS.x86_64.latest.tar.minisig'}));
    expect(head.WebsiteRedirectLocation).toBe(`/os/${readlinkSync(join(replica, 'os', 'psyopsOS.x86_64.latest.tar.minisig'))}`);

    const pulled = join(dir, 'pulled');
    const dp = await psy(['deaddrop', 'forcepull', '--dry-run', '--root', pulled], dir, S3RVER_ENV);
    expect(dp.stdout).toMatch(/^redirect {2}redirect os\/psyopsOS\.x86_64\.latest\.tar\.minisig -> os\/psyopsOS\.x86_64\.\d{8}-\d{6}\.tar\.minisig$/m);
    const fp = await psy(['deaddrop', 'forcepull', '--root', pulled], dir, S3RVER_ENV);
    expect(fp.code, fp.stderr).toBe(0);
    expect(tree(pulled)).toEqual(tree(replica));
    expect(lstatSync(join(pulled, 'os', 'psyopsOS.x86_64.latest.tar.minisig')).isSymbolicLink()).toBe(true);
  });

  it('fails early with one line and publishes nothing: unreachable endpoint, missing credentials, wrong password, bad settings', async () => {
    writeProject(dir, deaddrop({s3: {bucket, endpoint: 'http://127.0.0.1:9', region: 'us-east-1'}}));
    const replica = join(dir, 'cache', 'deaddrop');
    const r1 = await psy(['publish'], dir, S3RVER_ENV);
    expect(r1.code).toBe(1);
    expect(r1.stderr.split('\n').filter((l) => l.startsWith('psy publish:'))).toEqual([
      `psy publish: checking bucket s3://${bucket}/ at http://127.0.0.1:9: cannot reach the S3 endpoint (ECONNREFUSED)`,
    ]);
    expect(() => readdirSync(replica)).toThrow();

    writeConfig(dir, deaddrop());
    const r2 = await psy(['publish'], dir, {AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'), AWS_CONFIG_FILE: join(dir, 'none')});
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(
      /^psy publish: checking bucket s3:\/\/cli\d+\/ at http:\/\/127\.0\.0\.1:\d+: no S3 credentials found \(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE\)$/m,
    );
    expect(() => readdirSync(replica)).toThrow();

    const k = await psy(['keygen', '--fast-kdf', '-s', 'keys/release.key'], dir, {PSY_SIGNING_PASSWORD: 'right'});
    expect(k.code, k.stderr).toBe(0);
    writeConfig(dir, deaddrop(), {signing: {secretKey: 'keys/release.key', publicKey: 'keys/release.pub'}});
    const r3 = await psy(['publish'], dir, {...S3RVER_ENV, PSY_SIGNING_PASSWORD: 'wrong'});
    expect(r3.code).toBe(1);
    expect(r3.stderr).toBe('psy publish: keys/release.key: wrong password (or corrupted key file)\n');
    expect(() => readdirSync(replica)).toThrow();
    const list = await testClient(server.endpoint).send(new ListObjectsV2Command({Bucket: bucket}));
    expect(list.KeyCount ?? 0).toBe(0);

    const ok = await psy(['publish'], dir, {...S3RVER_ENV, PSY_SIGNING_PASSWORD: 'right'});
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).not.toMatch(/development key/);
    const v = await psy(
      ['verify', join(replica, 'os', readlinkSync(join(replica, 'os', 'psyopsESP.x86_64-uefi.latest.tar.minisig')).replace(/\.minisig$/, ''))],
      dir,
    );
    expect(v.code, v.stderr).toBe(0);

    writeConfig(dir, {...deaddrop(), ostar: {target: 'ostar'}});
    const r4 = await psy(['publish'], dir, S3RVER_ENV);
    expect(r4.stderr).toBe('psy publish: settings.deaddrop.ostar.arch: is required\n');
    writeConfig(dir, {...deaddrop(), bogus: 1});
    const r5 = await psy(['publish'], dir, S3RVER_ENV);
    expect(r5.stderr).toMatch(/^psy publish: settings\.deaddrop\.bogus: unknown setting/);
  });
});
