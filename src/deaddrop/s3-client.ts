import type {S3Client} from '@aws-sdk/client-s3';
import {s3 as sdk} from './aws-sdk.js';
import {PsyError} from '../errors.js';
import {type S3Settings} from './settings.js';

/**
 * An S3 client from the settings and the environment: the AWS SDK's default credential
 * chain (env, profile, SSO, instance roles), region from settings or AWS_REGION, and an
 * optional endpoint with path-style addressing for S3-compatible servers.
 *
 * Checksums are only sent when an operation requires them: psy checks integrity with
 * the sha256 it stores in object metadata, and S3-compatible servers (s3rver among them)
 * store the SDK's aws-chunked checksum framing inside the object otherwise.
 */
export function createS3Client(s: S3Settings, env: NodeJS.ProcessEnv): S3Client {
  // The SDK version is pinned; its notice about future versions needing Node 22 is noise.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const keyId = env['AWS_ACCESS_KEY_ID'];
  const secret = env['AWS_SECRET_ACCESS_KEY'];
  const token = env['AWS_SESSION_TOKEN'];
  const endpoint = s.endpoint ?? env['AWS_ENDPOINT_URL_S3'] ?? env['AWS_ENDPOINT_URL'];
  return new sdk.S3Client({
    region: s.region ?? env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'] ?? 'us-east-1',
    ...(endpoint !== undefined ? {endpoint} : {}),
    forcePathStyle: s.forcePathStyle,
    ...(keyId && secret ? {credentials: {accessKeyId: keyId, secretAccessKey: secret, ...(token ? {sessionToken: token} : {})}} : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
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
    return new PsyError(
      's3-credentials',
      `${what} ${where}: no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)`,
    );
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
