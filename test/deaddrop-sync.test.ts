import {GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutBucketWebsiteCommand, PutObjectCommand} from '@aws-sdk/client-s3';
import {createHash} from 'node:crypto';
import {lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {request} from 'node:http';
import {tmpdir} from 'node:os';
import {join, relative} from 'node:path';
import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest';
import {createS3Client, parseS3Settings, publishToReplica, pull, push, type S3Settings} from '../src/deaddrop/index.js';
import {generateKeyPair, parseSignature, parseTrustedComment, verifyBytes} from '../src/sign/index.js';
import {makeApkRepo, makeEsptar, makeOstar} from './helpers/deaddrop-fixtures.js';
import {S3RVER_ENV, startS3rver, testClient, type S3rverProcess} from './helpers/deaddrop-s3rver.js';

let server: S3rverProcess;
let serverDir: string;
let dir: string;
let bucketN = 0;
let bucket: string;

beforeAll(async () => {
  serverDir = mkdtempSync(join(tmpdir(), 'psy-s3rver-'));
  server = await startS3rver(
    serverDir,
    Array.from({length: 12}, (_, i) => `deaddrop${i}`),
  );
});
afterAll(async () => {
  await server.stop();
  rmSync(serverDir, {recursive: true, force: true});
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-sync-'));
  bucket = `deaddrop${bucketN++}`;
});
afterEach(() => {
  rmSync(dir, {recursive: true, force: true});
});

function settings(extra: Record<string, unknown> = {}): S3Settings {
  return parseS3Settings({bucket, endpoint: server.endpoint, region: 'us-east-1', multipartThreshold: 6 * 2 ** 20, partSize: 5 * 2 ** 20, ...extra});
}

function opts(root: string, s = settings()) {
  return {root, s3: s, client: createS3Client(s, S3RVER_ENV)};
}

/** A replica built by the real publish path: os/ with latest links, apk/. */
async function replica(root: string, seed = 'one') {
  const keys = generateKeyPair();
  makeOstar(join(dir, 'psyopsOS.tar'), seed, {payloadBytes: 20_000});
  makeEsptar(join(dir, 'psyopsESP.tar'), seed);
  const repo = join(dir, `apk-${seed}`);
  makeApkRepo(repo, {[`psyopsOS-base-${seed}.apk`]: seed});
  await publishToReplica({
    root,
    keep: 3,
    secretKey: keys.secretKey,
    publicKey: keys.publicKey,
    apkRepository: repo,
    artifacts: [
      {kind: 'psyopsOS', id: 'x86_64', path: join(dir, 'psyopsOS.tar'), source: 'ostar', fields: {architecture: 'x86_64'}},
      {kind: 'psyopsESP', id: 'x86_64-uefi', path: join(dir, 'psyopsESP.tar'), source: 'esptar'},
    ],
  });
  return keys;
}

function tree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, {withFileTypes: true})) {
      if (e.name.startsWith('.psy-')) continue;
      const p = join(d, e.name);
      const k = relative(root, p);
      if (e.isDirectory()) walk(p);
      else if (e.isSymbolicLink()) out[k] = `-> ${readlinkSync(p)}`;
      else out[k] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(root);
  return out;
}

async function getBytes(key: string): Promise<Buffer> {
  const r = await testClient(server.endpoint).send(new GetObjectCommand({Bucket: bucket, Key: key}));
  return Buffer.from(await r.Body!.transformToByteArray());
}

describe('push and pull against s3rver', () => {
  it('pushes the replica with latest as redirects, reads back through HeadObject and a website GET', async () => {
    const root = join(dir, 'replica');
    const keys = await replica(root);
    const r = await push(opts(root));
    const files = Object.entries(tree(root));
    expect(r.uploaded).toBe(files.filter(([, v]) => !v.startsWith('->')).length);
    expect(r.redirects).toBe(2);
    // phases in order: blobs, signatures/indexes, redirects
    const phases = r.plan.actions.map((a) => a.phase);
    expect(phases).toEqual(
      [...phases].sort((a, b) => ['blob', 'signature', 'redirect', 'delete'].indexOf(a) - ['blob', 'signature', 'redirect', 'delete'].indexOf(b)),
    );
    expect(r.plan.actions.find((a) => a.key.endsWith('APKINDEX.tar.gz'))?.phase).toBe('signature');

    const c = testClient(server.endpoint);
    const head = await c.send(new HeadObjectCommand({Bucket: bucket, Key: 'os/psyopsOS.x86_64.latest.tar.minisig'}));
    const target = readlinkSync(join(root, 'os', 'psyopsOS.x86_64.latest.tar.minisig'));
    expect(head.WebsiteRedirectLocation).toBe(`/os/${target}`);
    expect(head.ContentLength).toBe(0);
    // every object is byte-identical to the replica (the s3rver checksum trap would add framing)
    for (const [k, sha] of files) {
      if (sha.startsWith('->')) continue;
      expect(
        createHash('sha256')
          .update(await getBytes(k))
          .digest('hex'),
        k,
      ).toBe(sha);
    }
    // what a node does: follow latest, read the signature, fetch the tarball it names, verify
    const sig = (await getBytes(head.WebsiteRedirectLocation!.slice(1))).toString('utf8');
    const filename = parseTrustedComment(parseSignature(sig).trustedComment)['filename']!;
    expect(verifyBytes(await getBytes(`os/${filename}`), sig, keys.publicKey).trustedComment).toContain(`filename=${filename}`);

    // website endpoint semantics: a plain GET (no x-amz headers) gets a 301
    await c.send(new PutBucketWebsiteCommand({Bucket: bucket, WebsiteConfiguration: {IndexDocument: {Suffix: 'index.html'}}}));
    const res = await new Promise<{status: number; location: string | undefined}>((ok, bad) => {
      request(
        {host: '127.0.0.1', port: server.port, path: '/os/psyopsOS.x86_64.latest.tar.minisig', headers: {host: `${bucket}.s3-website.localhost`}},
        (m) => {
          m.resume();
          ok({status: m.statusCode ?? 0, location: m.headers.location});
        },
      )
        .on('error', bad)
        .end();
    });
    expect(res).toEqual({status: 301, location: `/os/${target}`});
  });

  it('pulls into an empty replica giving the same tree; an unchanged push uploads nothing', async () => {
    const root = join(dir, 'replica');
    await replica(root);
    await push(opts(root));
    const again = await push(opts(root));
    expect(again).toMatchObject({uploaded: 0, redirects: 0, deleted: 0, bytes: 0});
    expect(again.plan.actions).toEqual([]);

    const copy = join(dir, 'copy');
    const p = await pull(opts(copy));
    expect(p.downloaded).toBeGreaterThan(0);
    expect(tree(copy)).toEqual(tree(root));
    expect(lstatSync(join(copy, 'os', 'psyopsESP.x86_64-uefi.latest.tar.minisig')).isSymbolicLink()).toBe(true);
    // a second pull is a no-op; a push from a fresh clone (no sync cache) uploads nothing either
    expect((await pull(opts(copy))).plan.actions).toEqual([]);
    rmSync(join(copy, '.psy-sync-state.json'));
    expect((await push(opts(copy))).uploaded).toBe(0);
    // the HEADs that run found each object's sha256; afterwards the listing suffices,
    // only the two zero-byte objects (the latest redirects) are read again
    const counted = opts(copy);
    const calls: string[] = [];
    counted.client.middlewareStack.add(
      (next, context) => async (args) => {
        calls.push(context.commandName ?? '?');
        return next(args);
      },
      {step: 'initialize'},
    );
    expect((await push(counted)).uploaded).toBe(0);
    expect(calls.sort()).toEqual(['HeadObjectCommand', 'HeadObjectCommand', 'ListObjectsV2Command']);
  });

  it('pushes a changed replica incrementally, deletes last, and mirrors deletions on pull', async () => {
    const root = join(dir, 'replica');
    const copy = join(dir, 'copy');
    const keys = await replica(root, 'one');
    await push(opts(root));
    await pull(opts(copy));
    // a second publish (new OS version) plus a removed file
    makeOstar(join(dir, 'psyopsOS.tar'), 'two', {payloadBytes: 20_000});
    await publishToReplica({
      root,
      keep: 1,
      secretKey: keys.secretKey,
      publicKey: keys.publicKey,
      now: new Date('2099-01-01T00:00:00Z'),
      artifacts: [{kind: 'psyopsOS', id: 'x86_64', path: join(dir, 'psyopsOS.tar'), source: 'ostar', fields: {architecture: 'x86_64'}}],
    });
    const dry = await push({...opts(root), dryRun: true});
    expect(dry.uploaded).toBe(0);
    expect(dry.plan.actions.map((a) => `${a.phase} ${a.key}`)).toEqual([
      'blob os/psyopsOS.x86_64.20990101-000000.tar',
      'signature os/psyopsOS.x86_64.20990101-000000.tar.minisig',
      'redirect os/psyopsOS.x86_64.latest.tar.minisig',
      expect.stringMatching(/^delete os\/psyopsOS\.x86_64\.\d{8}-\d{6}\.tar$/),
      expect.stringMatching(/^delete os\/psyopsOS\.x86_64\.\d{8}-\d{6}\.tar\.minisig$/),
    ]);
    const steps: string[] = [];
    const r = await push({...opts(root), onStep: (s) => void steps.push(s)});
    expect(r).toMatchObject({uploaded: 2, redirects: 1, deleted: 2});
    expect(steps).toEqual([
      'blob:os/psyopsOS.x86_64.20990101-000000.tar',
      'signature:os/psyopsOS.x86_64.20990101-000000.tar.minisig',
      'redirect:os/psyopsOS.x86_64.latest.tar.minisig',
      'delete:2',
    ]);
    const pr = await pull(opts(copy));
    expect(pr).toMatchObject({downloaded: 2, redirects: 1, deleted: 2});
    expect(tree(copy)).toEqual(tree(root));
  });

  it('uploads large files in parts with progress, and lists across pages', async () => {
    const root = join(dir, 'replica');
    mkdirSync(join(root, 'os'), {recursive: true});
    const big = Buffer.alloc(13 * 2 ** 20);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    writeFileSync(join(root, 'os', 'big.tar'), big);
    for (let i = 0; i < 7; i++) writeFileSync(join(root, `f${i}.txt`), `file ${i}`);
    const progress: number[] = [];
    const r = await push({...opts(root), onProgress: (p) => p.key === 'os/big.tar' && progress.push(p.loaded)});
    expect(r.uploaded).toBe(8);
    expect(progress.length).toBeGreaterThan(1);
    expect(Math.max(...progress)).toBe(big.length);
    expect(
      createHash('sha256')
        .update(await getBytes('os/big.tar'))
        .digest('hex'),
    ).toBe(createHash('sha256').update(big).digest('hex'));
    const h = await testClient(server.endpoint).send(new HeadObjectCommand({Bucket: bucket, Key: 'os/big.tar'}));
    expect(h.Metadata?.['psy-sha256']).toBe(createHash('sha256').update(big).digest('hex'));
    // pages of 3 keys: 8 objects need 3 pages (needs s3rver's DES continuation tokens)
    const paged = await push({...opts(root), pageSize: 3});
    expect(paged.plan.unchanged).toBe(8);
    expect(paged.plan.actions).toEqual([]);
    const copy = join(dir, 'copy');
    await pull({...opts(copy), pageSize: 3});
    expect(tree(copy)).toEqual(tree(root));
  });

  it('honours a key prefix', async () => {
    const root = join(dir, 'replica');
    await replica(root);
    const s = settings({prefix: 'psyops/'});
    await push(opts(root, s));
    const list = await testClient(server.endpoint).send(new ListObjectsV2Command({Bucket: bucket}));
    expect((list.Contents ?? []).every((o) => o.Key!.startsWith('psyops/'))).toBe(true);
    const head = await testClient(server.endpoint).send(new HeadObjectCommand({Bucket: bucket, Key: 'psyops/os/psyopsOS.x86_64.latest.tar.minisig'}));
    expect(head.WebsiteRedirectLocation).toMatch(/^\/psyops\/os\/psyopsOS\.x86_64\.\d{8}-\d{6}\.tar\.minisig$/);
    const copy = join(dir, 'copy');
    await pull(opts(copy, s));
    expect(tree(copy)).toEqual(tree(root));
  });
});

describe('bad input against S3', () => {
  it('refuses a redirect to a foreign host on pull, and one leaving the bucket', async () => {
    const c = testClient(server.endpoint);
    await c.send(new PutObjectCommand({Bucket: bucket, Key: 'os/a.minisig', Body: 'x'}));
    await c.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'os/x.latest.tar.minisig',
        Body: Buffer.alloc(0),
        WebsiteRedirectLocation: 'https://evil.example/os/a.minisig',
        ContentLength: 0,
      }),
    );
    const copy = join(dir, 'copy');
    await expect(pull(opts(copy))).rejects.toMatchObject({
      code: 'foreign-redirect',
      message: 'os/x.latest.tar.minisig: redirect to foreign host evil.example refused (https://evil.example/os/a.minisig)',
    });
    expect(readdirSync(copy)).toEqual([]);
    // the same URL under the configured public base is fine
    const ok = await pull(opts(copy, settings({publicUrl: 'https://evil.example'})));
    expect(ok.redirects).toBe(1);
    expect(readlinkSync(join(copy, 'os', 'x.latest.tar.minisig'))).toBe('a.minisig');
  });

  it('reports an unreachable endpoint and missing credentials in one line', async () => {
    const root = join(dir, 'replica');
    await replica(root);
    const dead = parseS3Settings({bucket, endpoint: 'http://127.0.0.1:9', region: 'us-east-1'});
    await expect(push({root, s3: dead, client: createS3Client(dead, S3RVER_ENV)})).rejects.toMatchObject({
      code: 's3-unreachable',
      message: `listing s3://${bucket}/ at http://127.0.0.1:9: cannot reach the S3 endpoint (ECONNREFUSED)`,
    });
    const saved = {...process.env};
    try {
      for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_PROFILE', 'AWS_SESSION_TOKEN']) delete process.env[k];
      process.env['AWS_SHARED_CREDENTIALS_FILE'] = join(dir, 'none');
      process.env['AWS_CONFIG_FILE'] = join(dir, 'none');
      process.env['AWS_EC2_METADATA_DISABLED'] = 'true';
      const s = settings();
      await expect(push({root, s3: s, client: createS3Client(s, {})})).rejects.toMatchObject({code: 's3-credentials'});
    } finally {
      process.env = saved;
    }
    const list = await testClient(server.endpoint).send(new ListObjectsV2Command({Bucket: bucket}));
    expect(list.KeyCount ?? 0).toBe(0);
  });

  it('refuses to push a replica with a link that dangles or leaves it', async () => {
    const root = join(dir, 'replica');
    mkdirSync(join(root, 'os'), {recursive: true});
    symlinkSync('missing.minisig', join(root, 'os', 'x.latest.tar.minisig'));
    await expect(push(opts(root))).rejects.toThrow('os/x.latest.tar.minisig: symlink to missing.minisig dangles');
    rmSync(join(root, 'os', 'x.latest.tar.minisig'));
    writeFileSync(join(dir, 'outside'), 'x');
    symlinkSync('../../outside', join(root, 'os', 'y'));
    await expect(push(opts(root))).rejects.toThrow(/os\/y: symlink to \.\.\/\.\.\/outside leaves the replica/);
  });
});
