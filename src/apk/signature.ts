import {createPrivateKey, sign as cryptoSign, verify as cryptoVerify} from 'node:crypto';
import {PsyError, printable} from '../errors.js';
import {gzipMember} from './gzip-members.js';
import type {Keyring, SigningKey} from './keys.js';
import {writeTar, type TarEntry} from '../tar/index.js';

/** Signature algorithms of APK v2: `.SIGN.RSA.` = SHA-1, `.SIGN.RSA256.`, `.SIGN.RSA512.`. */
export type SignatureAlgorithm = 'RSA' | 'RSA256' | 'RSA512';

const DIGEST: Record<SignatureAlgorithm, string> = {RSA: 'sha1', RSA256: 'sha256', RSA512: 'sha512'};

export interface SignatureFile {
  readonly algorithm: SignatureAlgorithm;
  readonly keyName: string;
  readonly signature: Buffer;
}

/** Picks the `.SIGN.*` entries out of a signature tar; others are ignored like apk does. */
export function signatureFiles(entries: readonly TarEntry[]): SignatureFile[] {
  const out: SignatureFile[] = [];
  for (const e of entries) {
    const m = /^\.SIGN\.(RSA|RSA256|RSA512)\.(.+)$/.exec(e.path);
    if (!m || e.type !== 'file' || e.data.length > 65536) continue;
    out.push({algorithm: m[1] as SignatureAlgorithm, keyName: m[2]!, signature: e.data});
  }
  return out;
}

/**
 * Checks that at least one signature was made by a trusted key over `signed` (the
 * compressed bytes of the signed gzip member). Returns the key name that verified.
 */
export function verifySignatures(sigs: readonly SignatureFile[], signed: Buffer, keyring: Keyring, what: string): string {
  if (sigs.length === 0) throw new PsyError('apk-unsigned', `${what} is not signed`);
  const known = sigs.filter((s) => keyring.keys.has(s.keyName));
  if (known.length === 0) {
    throw new PsyError(
      'apk-untrusted',
      `${what} is signed by ${sigs.map((s) => printable(s.keyName)).join(', ')}, which is not among the trusted keys (${keyring.source})`,
    );
  }
  for (const s of known) {
    if (cryptoVerify(DIGEST[s.algorithm], signed, keyring.keys.get(s.keyName)!, s.signature)) return s.keyName;
  }
  throw new PsyError('apk-bad-signature', `${what}: signature by ${known.map((s) => s.keyName).join(', ')} does not verify (content altered or wrong key)`);
}

/**
 * Builds the signature gzip member abuild-sign prepends: an old-GNU tar (no
 * end-of-archive) holding `.SIGN.<ALG>.<keyname>`, root-owned, 0644.
 */
export function signatureMember(signed: Buffer, key: SigningKey, mtime: number, algorithm: SignatureAlgorithm = 'RSA'): Buffer {
  const signature = cryptoSign(DIGEST[algorithm], signed, createPrivateKey(key.privateKeyPem));
  const tar = writeTar([{path: `.SIGN.${algorithm}.${key.name}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime, data: signature}], {
    format: 'gnu',
    endOfArchive: false,
  });
  return gzipMember(tar);
}
