import {spawn, type ChildProcess} from 'node:child_process';
import {createInterface} from 'node:readline';
import {fileURLToPath} from 'node:url';
import * as sdk from '@aws-sdk/client-s3';
import type {S3Client} from '@aws-sdk/client-s3';
import {createS3Client} from '../../src/s3/client.js';

export interface S3rverProcess {
  readonly endpoint: string;
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

const script = fileURLToPath(new URL('./deaddrop-s3rver.mjs', import.meta.url));

/** Starts s3rver in a child process (it needs --openssl-legacy-provider, see the script). */
export async function startS3rver(dir: string, buckets: string[] = ['deaddrop']): Promise<S3rverProcess> {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', script, dir, buckets.join(',')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((ok, bad) => {
    const rl = createInterface({input: child.stdout!});
    rl.once('line', (line) => ok((JSON.parse(line) as {port: number}).port));
    child.once('exit', (code) => bad(new Error(`s3rver exited with ${code}`)));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    child,
    stop: () =>
      new Promise((ok) => {
        if (child.exitCode !== null) return ok();
        child.once('exit', () => ok());
        child.kill('SIGTERM');
      }),
  };
}

/** s3rver's fixed credentials, for the AWS_* environment of the code under test. */
export const S3RVER_ENV = {AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1'};

/** A plain client for reading the bucket back in assertions. */
export function testClient(endpoint: string): S3Client {
  return createS3Client(sdk, {endpoint, forcePathStyle: true}, S3RVER_ENV);
}
