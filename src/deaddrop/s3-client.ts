import type {S3Client} from '@aws-sdk/client-s3';
import {s3 as sdk} from './aws-sdk.js';
import {PsyError} from '../errors.js';
import {createS3Client as makeS3Client} from '../s3/client.js';
import {type S3Settings} from './settings.js';

/** The deaddrop's S3 client: the project's bucket settings through the one factory (src/s3/client.ts). */
export function createS3Client(s: S3Settings, env: NodeJS.ProcessEnv): S3Client {
  return makeS3Client(sdk, {region: s.region, endpoint: s.endpoint, forcePathStyle: s.forcePathStyle}, env);
}

function describe(s: S3Settings): string {
  return `s3://${s.bucket}/${s.prefix}${s.endpoint !== undefined ? ` at ${s.endpoint}` : ''}`;
}

/** Turns SDK and network failures into one-line PsyErrors naming the bucket and operation. */
export function s3Error(err: unknown, s: S3Settings, what: string): PsyError {
  if (err instanceof PsyError) return err;
  const e = err as {name?: string; code?: string; message?: string; $metadata?: {httpStatusCode?: number}; cause?: {code?: string}};
  const name = e.name ?? 'Error';
  const code = e.code ?? e.cause?.code ?? '';
  const msg = (e.message ?? String(err)).split('\n')[0];
  const where = describe(s);
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(msg ?? '')) {
    return new PsyError('s3-credentials', `${what} ${where}: no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)`);
  }
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(code) || name === 'TimeoutError') {
    return new PsyError('s3-unreachable', `${what} ${where}: cannot reach the S3 endpoint (${code || name})`);
  }
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden'].includes(name) || e.$metadata?.httpStatusCode === 403) {
    return new PsyError('s3-denied', `${what} ${where}: access denied (${name})`);
  }
  if (name === 'NoSuchBucket' || (name === 'NotFound' && what === 'checking bucket')) {
    return new PsyError('s3-no-bucket', `${what} ${where}: the bucket does not exist`);
  }
  return new PsyError('s3-error', `${what} ${where}: ${name}${code ? ` (${code})` : ''}: ${msg}`);
}

/** Fails early (before anything is changed) when the bucket cannot be used. */
export async function checkBucket(client: S3Client, s: S3Settings): Promise<void> {
  try {
    await client.send(new sdk.HeadBucketCommand({Bucket: s.bucket}));
  } catch (err) {
    throw s3Error(err, s, 'checking bucket');
  }
}
