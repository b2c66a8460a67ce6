import {createRequire} from 'node:module';
import type * as ClientS3 from '@aws-sdk/client-s3';
import type * as LibStorage from '@aws-sdk/lib-storage';

/*
 * The AWS SDK is CommonJS. Loading it with require skips the ESM loader's export
 * analysis of every SDK module, which is most of a no-op push's start-up time.
 */
const require = createRequire(import.meta.url);

export const s3: typeof ClientS3 = require('@aws-sdk/client-s3') as typeof ClientS3;

/** Multipart uploads only: loaded on first use. */
export function libStorage(): typeof LibStorage {
  return require('@aws-sdk/lib-storage') as typeof LibStorage;
}
