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

/**
 * The most a key file may ask of scrypt: twice the memory and four times the work of
 * minisign's default (what `minisign -G` writes). A corrupted opslimit or memlimit maps
 * to parameters Node's scrypt refuses, or to hours of work or gigabytes of memory.
 */
export const KDF_MAX_MEMORY = 2 * 128 * 8 * 2 ** 20;
export const KDF_MAX_WORK = 4 * 8 * 2 ** 20;

/** scrypt's (N, r, p) for these limits, or why they are out of bounds. */
export function boundedScryptParams(limits: KdfLimits): {N: number; r: number; p: number} | {tooMuch: string} {
  const {N, r, p} = scryptParams(limits);
  const shown = `scrypt N=2^${Math.log2(N)} r=${r} p=${p}`;
  if (128 * N * r > KDF_MAX_MEMORY) return {tooMuch: `${shown} (${(128 * N * r) / 2 ** 30} GiB of memory)`};
  if (N * r * p > KDF_MAX_WORK) return {tooMuch: `${shown} (${Math.round((N * r * p) / (8 * 2 ** 20))} times minisign's default work)`};
  return {N, r, p};
}

export function deriveKeystream(password: string, salt: Uint8Array, length: number, limits: KdfLimits): Promise<Buffer> {
  const {N, r, p} = scryptParams(limits);
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, length, {N, r, p, maxmem: 128 * N * r * 2 + 2 ** 24}, (err, key) => (err ? reject(err) : resolve(key)));
  });
}
