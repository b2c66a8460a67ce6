import {CreateBucketCommand, GetObjectCommand, HeadObjectCommand} from '@aws-sdk/client-s3';
import {spawnSync} from 'node:child_process';
import {cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {fileURLToPath} from 'node:url';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {createS3Client, parseS3Settings, push} from '../src/deaddrop/index.js';
import {parsePublicKey, parseSignature, parseTrustedComment, verifyBytes, verifyFile, type PublicKey} from '../src/sign/index.js';
import {assertBuilt} from './helpers/deaddrop-cli.js';
import {writeConfig, writeProject} from './helpers/deaddrop-project.js';
import {S3RVER_ENV, startS3rver, testClient, type S3rverProcess} from './helpers/deaddrop-s3rver.js';

const child = fileURLToPath(new URL('./helpers/deaddrop-crash-child.mjs', import.meta.url));
const LATEST = ['os/psyopsOS.x86_64.latest.tar.minisig', 'os/psyopsESP.x86_64-uefi.latest.tar.minisig'];

let server: S3rverProcess;
let work: string;
let template: string;

function deaddrop(bucket: string) {
  return {
    keep: 1,
    ostar: {target: 'ostar', arch: 'x86_64'},
    esptar: {target: 'esptar', platform: 'x86_64-uefi'},
    apk: {target: 'apkrepo'},
    s3: {bucket, endpoint: server.endpoint, region: 'us-east-1'},
  };
}

function runPublish(cwd: string, crashAt: number): {status: number | null; signal: NodeJS.Signals | null; steps: string[]} {
  const r = spawnSync(process.execPath, [child, cwd, String(crashAt)], {env: {...process.env, ...S3RVER_ENV}, encoding: 'utf8'});
  if (r.status !== 0 && r.signal !== 'SIGKILL') throw new Error(`publish failed: ${r.stderr}`);
  return {status: r.status, signal: r.signal, steps: r.stdout.split('\n').filter((l) => /^\d+ /.test(l))};
}

/** Both latest links name a signature whose tarball exists and verifies; indexes name only present packages. */
async function checkReplica(root: string, pk: PublicKey): Promise<Record<string, string>> {
  const versions: Record<string, string> = {};
  for (const key of LATEST) {
    const link = join(root, key);
    expect(lstatSync(link).isSymbolicLink(), key).toBe(true);
    const sigPath = join(root, 'os', readlinkSync(link));
    const fields = parseTrustedComment(parseSignature(readFileSync(sigPath, 'utf8')).trustedComment);
    await verifyFile(join(root, 'os', fields['filename']!), pk, {signature: readFileSync(sigPath, 'utf8')});
    versions[key] = fields['version']!;
  }
  const apkDir = join(root, 'apk', 'v3.21', 'psyopsOS', 'x86_64');
  for (const name of readFileSync(join(apkDir, 'APKINDEX.tar.gz'), 'utf8').split('\n').filter(Boolean)) {
    expect(existsSync(join(apkDir, name)), `replica index names ${name}`).toBe(true);
  }
  return versions;
}

async function getObject(bucket: string, key: string): Promise<Buffer> {
  const r = await testClient(server.endpoint).send(new GetObjectCommand({Bucket: bucket, Key: key}));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/** The same, read from the bucket the way a node does: HeadObject redirect, signature, tarball. */
async function checkBucket(bucket: string, pk: PublicKey): Promise<Record<string, string>> {
  const versions: Record<string, string> = {};
  const c = testClient(server.endpoint);
  for (const key of LATEST) {
    const head = await c.send(new HeadObjectCommand({Bucket: bucket, Key: key}));
    expect(head.WebsiteRedirectLocation, key).toMatch(/^\/os\//);
    const sig = (await getObject(bucket, head.WebsiteRedirectLocation!.slice(1))).toString('utf8');
    const fields = parseTrustedComment(parseSignature(sig).trustedComment);
    verifyBytes(await getObject(bucket, `os/${fields['filename']}`), sig, pk);
    versions[key] = fields['version']!;
  }
  const index = (await getObject(bucket, 'apk/v3.21/psyopsOS/x86_64/APKINDEX.tar.gz')).toString('utf8');
  for (const name of index.split('\n').filter(Boolean)) {
    await c.send(new HeadObjectCommand({Bucket: bucket, Key: `apk/v3.21/psyopsOS/x86_64/${name}`}));
  }
  return versions;
}

beforeAll(async () => {
  assertBuilt();
  work = mkdtempSync(join(tmpdir(), 'psy-crash-'));
  server = await startS3rver(join(work, 's3'), ['template']);
  // version 1, published completely: the state every crash run starts from
  template = join(work, 'template');
  writeProject(template, deaddrop('template'));
  expect(runPublish(template, 0).status).toBe(0);
});
afterAll(async () => {
  await server.stop();
  rmSync(work, {recursive: true, force: true});
});

describe('a publish killed after each step', () => {
  it('always leaves latest resolving to a complete, verifying version, locally and in the bucket', async () => {
    const pk = parsePublicKey(readFileSync(join(template, 'cache', 'signing', 'dev.pub'), 'utf8'));
    const v1 = await checkReplica(join(template, 'cache', 'deaddrop'), pk);
    const change = (dir: string): void => {
      writeFileSync(join(dir, 'os', 'kernel.version'), '6.6.99-0-lts\n');
      writeFileSync(join(dir, 'esp', 'grub', 'grub.cfg'), '# grub 2\n');
      rmSync(join(dir, 'pkgs', 'psyopsOS-base-1.0-r0.apk'));
      writeFileSync(join(dir, 'pkgs', 'psyopsOS-base-1.1-r0.apk'), 'base 1.1');
    };
    // the full sequence of durable steps, from an uninterrupted run
    const fresh = join(work, 'count');
    cpSync(template, fresh, {recursive: true, verbatimSymlinks: true});
    await testClient(server.endpoint).send(new CreateBucketCommand({Bucket: 'count'}));
    writeConfig(fresh, deaddrop('count'));
    await push({
      root: join(fresh, 'cache', 'deaddrop'),
      s3: parseS3Settings(deaddrop('count').s3),
      client: createS3Client(parseS3Settings(deaddrop('count').s3), S3RVER_ENV),
    });
    change(fresh);
    const steps = runPublish(fresh, 0).steps.map((l) => l.replace(/^\d+ /, ''));
    expect(steps.slice(0, 12)).toEqual([
      'repair',
      'tarball:psyopsOS.x86_64',
      'signature:psyopsOS.x86_64',
      'latest:psyopsOS.x86_64',
      'tarball:psyopsESP.x86_64-uefi',
      'signature:psyopsESP.x86_64-uefi',
      'latest:psyopsESP.x86_64-uefi',
      'apk:packages',
      'apk:index',
      'apk:delete',
      'prune:psyopsOS.x86_64',
      'prune:psyopsESP.x86_64-uefi',
    ]);
    // then the push: three blobs and three signatures/indexes (each group in parallel),
    // two redirects, one batch of deletions
    expect(steps).toHaveLength(21);
    expect(steps[20]).toBe('push:delete:5');
    expect(steps.slice(12, 15).every((s) => s.startsWith('push:blob:'))).toBe(true);
    expect(steps.slice(15, 18).every((s) => s.startsWith('push:signature:'))).toBe(true);
    expect(steps.slice(18, 20).every((s) => s.startsWith('push:redirect:'))).toBe(true);

    for (let i = 1; i <= steps.length; i++) {
      const bucket = `crash${i}`;
      const dir = join(work, bucket);
      cpSync(template, dir, {recursive: true, verbatimSymlinks: true});
      await testClient(server.endpoint).send(new CreateBucketCommand({Bucket: bucket}));
      writeConfig(dir, deaddrop(bucket));
      const s3 = parseS3Settings(deaddrop(bucket).s3);
      await push({root: join(dir, 'cache', 'deaddrop'), s3, client: createS3Client(s3, S3RVER_ENV)});
      change(dir);
      const r = runPublish(dir, i);
      expect(r.signal, `killed after step ${i}`).toBe('SIGKILL');
      expect(r.steps.at(-1)).toMatch(new RegExp(`^${i} `));
      const root = join(dir, 'cache', 'deaddrop');
      const local = await checkReplica(root, pk);
      const remote = await checkBucket(bucket, pk);
      // latest only ever moves forward, from v1 to the new version
      for (const key of LATEST) {
        expect(local[key]! >= v1[key]!, `step ${i} ${key}`).toBe(true);
        expect(remote[key]! >= v1[key]!, `step ${i} ${key}`).toBe(true);
      }
      // publishing again completes the job: both sides agree and are current
      expect(runPublish(dir, 0).status).toBe(0);
      const after = await checkReplica(root, pk);
      expect(await checkBucket(bucket, pk)).toEqual(after);
      for (const key of LATEST) expect(after[key]! > v1[key]!, `recovered ${key} after step ${i}`).toBe(true);
      const plan = await push({root, s3, client: createS3Client(s3, S3RVER_ENV), dryRun: true});
      expect(plan.plan.actions, `bucket equals replica after recovering from step ${i}`).toEqual([]);
      expect(readdirSync(join(root, 'os')).filter((n) => n.startsWith('.psy-tmp'))).toEqual([]);
      rmSync(dir, {recursive: true, force: true});
    }
  }, 600_000);
});
