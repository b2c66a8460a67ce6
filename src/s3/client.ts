import type * as ClientS3 from '@aws-sdk/client-s3';
import {PsyError} from '../errors.js';

/**
 * The one place S3 clients are made (deaddrop sync, neuralupgrade's s3:// repository,
 * tests). The SDK's own settings rule: region, retries and endpoint from the
 * environment and the shared config files (AWS_REGION, AWS_MAX_ATTEMPTS,
 * AWS_RETRY_MODE, AWS_PROFILE, ~/.aws/config ...); psy sets a value only where the
 * project says so, and falls back (region us-east-1) only where nothing is set at all.
 *
 * Checksums are only sent when an operation requires them: psy checks integrity with
 * the sha256 it stores in object metadata, and S3-compatible servers (s3rver among them)
 * store the SDK's aws-chunked checksum framing inside the object otherwise.
 *
 * The SDK module is passed in: neuralupgrade loads it only for s3:// repositories.
 */
export interface S3ClientOptions {
  /** The project's region (settings); wins over the environment. */
  readonly region?: string | undefined;
  /** S3-compatible endpoint URL (default: AWS, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). */
  readonly endpoint?: string | undefined;
  readonly forcePathStyle?: boolean | undefined;
}

const RETRY_MODES = new Set(['standard', 'adaptive', 'legacy']);

/**
 * `env` is the environment psy was started with (tests pass their own): its AWS_*
 * values are applied here, so they count even when they are not in process.env; what it
 * lacks the SDK still finds itself (process.env, config files).
 */
type Sdk = Pick<typeof ClientS3, 'S3Client'>;

export function createS3Client(sdk: Sdk, o: S3ClientOptions, env: NodeJS.ProcessEnv): ClientS3.S3Client {
  // The SDK version is pinned; its notice about future versions needing Node 22 is noise.
  process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
  const keyId = env['AWS_ACCESS_KEY_ID'];
  const secret = env['AWS_SECRET_ACCESS_KEY'];
  const token = env['AWS_SESSION_TOKEN'];
  const endpoint = o.endpoint ?? env['AWS_ENDPOINT_URL_S3'] ?? env['AWS_ENDPOINT_URL'];
  const maxAttempts = env['AWS_MAX_ATTEMPTS'];
  if (maxAttempts !== undefined && !/^[1-9][0-9]*$/.test(maxAttempts)) {
    throw new PsyError('bad-config', `AWS_MAX_ATTEMPTS must be a positive whole number, not "${maxAttempts}"`);
  }
  const retryMode = env['AWS_RETRY_MODE'];
  if (retryMode !== undefined && !RETRY_MODES.has(retryMode)) {
    throw new PsyError('bad-config', `AWS_RETRY_MODE must be standard, adaptive or legacy, not "${retryMode}"`);
  }
  const region = o.region ?? env['AWS_REGION'] ?? env['AWS_DEFAULT_REGION'];
  return new sdk.S3Client({
    // without one, the SDK's own chain (process.env, the profile in the config files) decides
    region: region ?? sdkRegionOr(sdk, 'us-east-1'),
    ...(endpoint !== undefined ? {endpoint} : {}),
    ...(o.forcePathStyle !== undefined ? {forcePathStyle: o.forcePathStyle} : {}),
    ...(keyId && secret ? {credentials: {accessKeyId: keyId, secretAccessKey: secret, ...(token ? {sessionToken: token} : {})}} : {}),
    ...(maxAttempts !== undefined ? {maxAttempts: Number(maxAttempts)} : {}),
    ...(retryMode !== undefined ? {retryMode} : {}),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** The region the SDK resolves by itself, or `fallback` when it finds none. */
function sdkRegionOr(sdk: Sdk, fallback: string): () => Promise<string> {
  let found: Promise<string> | undefined;
  return () => (found ??= new sdk.S3Client({}).config.region().catch(() => fallback));
}
