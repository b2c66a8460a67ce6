import {createHash} from 'node:crypto';
import {createRequire} from 'node:module';
import {pathToFileURL} from 'node:url';

/**
 * BLAKE2b (RFC 7693), the one module for it. minisign prehashes whole files with the
 * 64-byte variant: that is a hot path (a 100 MiB OS tarball in `neuralupgrade apply`),
 * so it runs on node:crypto's native 'blake2b512' wherever the runtime has it (Node,
 * Bun); @noble/hashes serves runtimes without it, and every other digest length
 * (BLAKE2b-256 is not a truncation of BLAKE2b-512: the length is in the parameter block;
 * minisign's secret-key checksum needs it).
 */

// Resolved from psy's own install: rules are compiled into the project's cache, where a
// bare import would look for node_modules in the project instead.
const {blake2b: noble} = (await import(
  pathToFileURL(createRequire(import.meta.url).resolve('@noble/hashes/blake2.js')).href
)) as typeof import('@noble/hashes/blake2.js');

export type Blake2bImpl = 'native' | 'noble';

export interface Blake2bHash {
  update(chunk: Uint8Array): Blake2bHash;
  digest(): Buffer;
}

function probeNative(): boolean {
  try {
    createHash('blake2b512');
    return true;
  } catch {
    return false;
  }
}

/** Which implementation BLAKE2b-512 uses in this runtime. */
export const blake2b512Impl: Blake2bImpl = probeNative() ? 'native' : 'noble';

/** An incremental BLAKE2b-512 (64-byte digest). */
export function createBlake2b512(impl: Blake2bImpl = blake2b512Impl): Blake2bHash {
  if (impl === 'native') {
    const h = createHash('blake2b512');
    const self: Blake2bHash = {
      update(chunk) {
        h.update(chunk);
        return self;
      },
      digest: () => h.digest(),
    };
    return self;
  }
  const h = noble.create({dkLen: 64});
  const self: Blake2bHash = {
    update(chunk) {
      h.update(chunk);
      return self;
    },
    digest: () => Buffer.from(h.digest()),
  };
  return self;
}

/** BLAKE2b of `data` with a digest of `outLength` bytes (1..64). */
export function blake2b(data: Uint8Array, outLength = 64, impl: Blake2bImpl = blake2b512Impl): Buffer {
  if (outLength === 64) return createBlake2b512(impl).update(data).digest();
  return Buffer.from(noble(data, {dkLen: outLength}));
}
