import {scrypt as scryptCb} from 'node:crypto';

/** minisign's defaults (libsodium's *_SENSITIVE limits): N=2^20, r=8, p=1, 1 GiB. */
export const SENSITIVE_KDF = {opslimit: 33554432, memlimit: 1073741824} as const;
/** libsodium's *_INTERACTIVE limits: N=2^14, r=8, p=1, 16 MiB. Fast; for test keys. */
export const INTERACTIVE_KDF = {opslimit: 524288, memlimit: 16777216} as const;

export interface KdfLimits {
  readonly opslimit: number;
  readonly memlimit: number;
}

/**
 * libsodium's crypto_pwhash_scryptsalsa208sha256 turns (opslimit, memlimit) into scrypt's
 * (N, r, p); minisign stores only the limits, so this mapping must match exactly.
 */
export function scryptParams({opslimit, memlimit}: KdfLimits): {N: number; r: number; p: number} {
  const ops = Math.max(opslimit, 32768);
  const r = 8;
  const pickLog2 = (maxN: number): number => {
    let n = 1;
    for (; n < 63; n++) if (2 ** n > Math.floor(maxN / 2)) break;
    return n;
  };
  if (ops < Math.floor(memlimit / 32)) {
    return {N: 2 ** pickLog2(Math.floor(ops / (r * 4))), r, p: 1};
  }
  const log2 = pickLog2(Math.floor(memlimit / (r * 128)));
  const maxrp = Math.min(Math.floor(Math.floor(ops / 4) / 2 ** log2), 0x3fffffff);
  return {N: 2 ** log2, r, p: Math.max(1, Math.floor(maxrp / r))};
}

export function deriveKeystream(
  password: string,
  salt: Uint8Array,
  length: number,
  limits: KdfLimits,
): Promise<Buffer> {
  const {N, r, p} = scryptParams(limits);
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, length, {N, r, p, maxmem: 128 * N * r * 2 + 2 ** 24}, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}
