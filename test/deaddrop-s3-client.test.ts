import {mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {createServer, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import * as sdk from '@aws-sdk/client-s3';
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest';
import {createS3Client as deaddropClient} from '../src/deaddrop/s3-client.js';
import {parseS3Settings} from '../src/deaddrop/index.js';
import {createS3Client} from '../src/s3/client.js';

const CREDS = {AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's'};
const AWS_KEYS = ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_MAX_ATTEMPTS', 'AWS_RETRY_MODE'];

describe('the one S3 client factory honours the SDK settings', () => {
  let server: Server;
  let endpoint: string;
  let requests = 0;
  const dir = mkdtempSync(join(tmpdir(), 'psy-s3-client-'));
  const saved = Object.fromEntries(AWS_KEYS.map((k) => [k, process.env[k]]));

  beforeAll(async () => {
    // an S3 endpoint that always fails with a retryable server error
    server = createServer((_req, res) => {
      requests++;
      res.writeHead(500, {'content-type': 'application/xml'}).end('<Error><Code>InternalError</Code><Message>down</Message></Error>');
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // nothing from this machine's own AWS configuration
    for (const k of AWS_KEYS) delete process.env[k];
    process.env['AWS_CONFIG_FILE'] = join(dir, 'none');
    process.env['AWS_SHARED_CREDENTIALS_FILE'] = join(dir, 'none');
  });
  afterEach(() => {
    requests = 0;
  });
  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await new Promise((ok) => server.close(ok));
    rmSync(dir, {recursive: true, force: true});
  });

  const attempts = async (env: NodeJS.ProcessEnv) => {
    const client = createS3Client(sdk, {endpoint, forcePathStyle: true}, {...CREDS, ...env});
    await expect(client.send(new sdk.HeadBucketCommand({Bucket: 'b'}))).rejects.toBeTruthy();
    return requests;
  };

  it('makes AWS_MAX_ATTEMPTS attempts, and the SDK default (3) without it', async () => {
    expect(await attempts({AWS_MAX_ATTEMPTS: '1'})).toBe(1);
    requests = 0;
    expect(await attempts({AWS_MAX_ATTEMPTS: '5', AWS_RETRY_MODE: 'standard'})).toBe(5);
    requests = 0;
    expect(await attempts({})).toBe(3);
  }, 60_000);

  it('takes AWS_MAX_ATTEMPTS from process.env too (the SDK reads it there)', async () => {
    process.env['AWS_MAX_ATTEMPTS'] = '2';
    try {
      expect(await attempts({})).toBe(2);
    } finally {
      delete process.env['AWS_MAX_ATTEMPTS'];
    }
  }, 60_000);

  it('refuses a malformed retry setting in one line naming it', () => {
    expect(() => createS3Client(sdk, {}, {AWS_MAX_ATTEMPTS: 'three'})).toThrow(/^AWS_MAX_ATTEMPTS must be a positive whole number, not "three"$/);
    expect(() => createS3Client(sdk, {}, {AWS_RETRY_MODE: 'eager'})).toThrow(/^AWS_RETRY_MODE must be standard, adaptive or legacy/);
  });

  it('takes the region from settings, then the environment, then the profile in the config file, then us-east-1', async () => {
    const region = (o: {region?: string}, env: NodeJS.ProcessEnv) => createS3Client(sdk, o, env).config.region();
    expect(await region({}, {})).toBe('us-east-1');
    writeFileSync(join(dir, 'config'), '[profile psy]\nregion = eu-west-3\nmax_attempts = 4\n');
    process.env['AWS_CONFIG_FILE'] = join(dir, 'config');
    process.env['AWS_PROFILE'] = 'psy';
    try {
      expect(await region({}, {})).toBe('eu-west-3');
      expect(await createS3Client(sdk, {}, {}).config.maxAttempts()).toBe(4);
      expect(await region({}, {AWS_REGION: 'ap-south-1'})).toBe('ap-south-1');
      expect(await region({region: 'ca-central-1'}, {AWS_REGION: 'ap-south-1'})).toBe('ca-central-1');
    } finally {
      process.env['AWS_CONFIG_FILE'] = join(dir, 'none');
      delete process.env['AWS_PROFILE'];
    }
  });

  it('is what the deaddrop uses: its bucket settings, the environment for the rest', async () => {
    const s = parseS3Settings({bucket: 'b', endpoint, forcePathStyle: true});
    const client = deaddropClient(s, {...CREDS, AWS_MAX_ATTEMPTS: '2'});
    expect(await client.config.maxAttempts()).toBe(2);
    expect(await client.config.region()).toBe('us-east-1');
  });
});
