import {sign as edSign, verify as edVerify} from 'node:crypto';
import {createReadStream} from 'node:fs';
import {readFile} from 'node:fs/promises';
import {PsyError, printable} from '../errors.js';
import {createBlake2b512} from './blake2b.js';
import {keyIdHex, privateKeyObject, publicKeyObject, type PublicKey, type SecretKey} from './keys.js';

/*
 * minisign signature file, four lines:
 *   untrusted comment: <text>
 *   base64( "ED" | keyid[8] | sig[64] )   "ED": sig over BLAKE2b-512(file) (prehashed)
 *                                          "Ed": sig over the file itself (legacy)
 *   trusted comment: <text>
 *   base64( sig over (sig[64] | trusted comment) )
 */

export type SignatureAlgorithm = 'prehashed' | 'legacy';

export interface ParsedSignature {
  readonly algorithm: SignatureAlgorithm;
  readonly keyId: Buffer;
  readonly signature: Buffer;
  readonly untrustedComment: string;
  readonly trustedComment: string;
  readonly globalSignature: Buffer;
}

export interface VerifiedSignature {
  readonly algorithm: SignatureAlgorithm;
  readonly keyId: string;
  /** The trusted comment text, authenticated. Parse it with parseTrustedComment. */
  readonly trustedComment: string;
}

export interface SignOptions {
  readonly trustedComment: string;
  readonly untrustedComment?: string;
  /** Default: prehashed ("ED"), as minisign ≥ 0.10 writes. */
  readonly algorithm?: SignatureAlgorithm;
}

export interface VerifyOptions {
  /** Accept legacy "Ed" signatures (default true, as `minisign -V` without -H). */
  readonly allowLegacy?: boolean;
  /** Name of the signature in error messages. */
  readonly source?: string;
}

const UNTRUSTED = 'untrusted comment: ';
const TRUSTED = 'trusted comment: ';

function bad(source: string, what: string): PsyError {
  return new PsyError('bad-signature', `${source}: ${what}`);
}

function b64(line: string | undefined, source: string, what: string, bytes: number): Buffer {
  if (line === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(line)) throw bad(source, `${what} is missing or not base64`);
  const raw = Buffer.from(line, 'base64');
  if (raw.length !== bytes) throw bad(source, `${what} has ${raw.length} bytes, expected ${bytes}`);
  return raw;
}

export function parseSignature(text: string, source = 'signature'): ParsedSignature {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const [l0, l1, l2, l3] = lines;
  if (l0 === undefined || !l0.startsWith(UNTRUSTED)) throw bad(source, 'not a minisign signature (no untrusted comment line)');
  const blob = b64(l1, source, 'signature line', 74);
  const alg = blob.toString('latin1', 0, 2);
  if (alg !== 'ED' && alg !== 'Ed') throw bad(source, `unknown signature algorithm '${printable(alg)}'`);
  if (l2 === undefined || !l2.startsWith(TRUSTED)) throw bad(source, 'no trusted comment line');
  const globalSignature = b64(l3, source, 'trusted comment signature', 64);
  if (lines.slice(4).some((l) => l.trim() !== '')) throw bad(source, 'unexpected text after the signature');
  return {
    algorithm: alg === 'ED' ? 'prehashed' : 'legacy',
    keyId: blob.subarray(2, 10),
    signature: blob.subarray(10, 74),
    untrustedComment: l0.slice(UNTRUSTED.length),
    trustedComment: l2.slice(TRUSTED.length),
    globalSignature,
  };
}

function checkComment(text: string, what: string): void {
  if (/[\r\n]/.test(text)) throw new PsyError('bad-trusted-comment', `${what} must be one line`);
}

function formatSignature(sk: SecretKey, algorithm: SignatureAlgorithm, message: Buffer, options: SignOptions): string {
  checkComment(options.trustedComment, 'trusted comment');
  const untrusted = options.untrustedComment ?? `signature from minisign secret key ${keyIdHex(sk.keyId)}`;
  checkComment(untrusted, 'untrusted comment');
  const key = privateKeyObject(sk.seed);
  const sig = edSign(null, message, key);
  const global = edSign(null, Buffer.concat([sig, Buffer.from(options.trustedComment, 'utf8')]), key);
  const blob = Buffer.concat([Buffer.from(algorithm === 'prehashed' ? 'ED' : 'Ed', 'latin1'), sk.keyId, sig]);
  return `${UNTRUSTED}${untrusted}\n${blob.toString('base64')}\n${TRUSTED}${options.trustedComment}\n${global.toString('base64')}\n`;
}

export function signBytes(data: Uint8Array, sk: SecretKey, options: SignOptions): string {
  const algorithm = options.algorithm ?? 'prehashed';
  const message = algorithm === 'prehashed' ? createBlake2b512().update(data).digest() : Buffer.from(data);
  return formatSignature(sk, algorithm, message, options);
}

async function hashFile(path: string): Promise<Buffer> {
  const h = createBlake2b512();
  try {
    // 1 MiB reads: the 64 KiB default spends as long in stream overhead as in BLAKE2b
    for await (const chunk of createReadStream(path, {highWaterMark: 1 << 20})) h.update(chunk as Buffer);
  } catch (err) {
    throw new PsyError('missing-input', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return h.digest();
}

async function readWhole(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new PsyError('missing-input', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Signs a file (streamed when prehashed); returns the signature file text. */
export async function signFile(path: string, sk: SecretKey, options: SignOptions): Promise<string> {
  const algorithm = options.algorithm ?? 'prehashed';
  const message = algorithm === 'prehashed' ? await hashFile(path) : await readWhole(path);
  return formatSignature(sk, algorithm, message, options);
}

function verifyParsed(sig: ParsedSignature, message: Buffer, pk: PublicKey, options: VerifyOptions, source: string): VerifiedSignature {
  const key = publicKeyObject(pk.key);
  if (!edVerify(null, message, key, sig.signature)) {
    throw bad(source, 'signature verification failed: the file does not match its signature');
  }
  if (!edVerify(null, Buffer.concat([sig.signature, Buffer.from(sig.trustedComment, 'utf8')]), key, sig.globalSignature)) {
    throw bad(source, 'trusted comment verification failed: the trusted comment was altered');
  }
  return {algorithm: sig.algorithm, keyId: keyIdHex(sig.keyId), trustedComment: sig.trustedComment};
}

function precheck(text: string, pk: PublicKey, options: VerifyOptions): [ParsedSignature, string] {
  const source = options.source ?? 'signature';
  const sig = parseSignature(text, source);
  if (!sig.keyId.equals(pk.keyId)) {
    throw new PsyError('key-mismatch', `${source}: signed by key ${keyIdHex(sig.keyId)}, but the public key is ${keyIdHex(pk.keyId)}`);
  }
  if (sig.algorithm === 'legacy' && options.allowLegacy === false) {
    throw bad(source, 'legacy (non-prehashed) signature refused');
  }
  return [sig, source];
}

/**
 * Authenticates only the trusted comment (the signature over the file is not checked).
 * Lets a reader check an update's metadata (type, version, architecture) before it
 * downloads the tarball; the tarball itself must still go through verifyFile.
 */
export function verifyTrustedComment(signatureText: string, pk: PublicKey, options: VerifyOptions = {}): VerifiedSignature {
  const [sig, source] = precheck(signatureText, pk, options);
  const ok = edVerify(null, Buffer.concat([sig.signature, Buffer.from(sig.trustedComment, 'utf8')]), publicKeyObject(pk.key), sig.globalSignature);
  if (!ok) throw bad(source, 'trusted comment verification failed: the trusted comment was altered');
  return {algorithm: sig.algorithm, keyId: keyIdHex(sig.keyId), trustedComment: sig.trustedComment};
}

/** Verifies data against a signature file's text; throws PsyError unless both signatures hold. */
export function verifyBytes(data: Uint8Array, signatureText: string, pk: PublicKey, options: VerifyOptions = {}): VerifiedSignature {
  const [sig, source] = precheck(signatureText, pk, options);
  const message = sig.algorithm === 'prehashed' ? createBlake2b512().update(data).digest() : Buffer.from(data);
  return verifyParsed(sig, message, pk, options, source);
}

/** A running hash: BLAKE2b-512 for prehashed signatures, computed wherever the caller likes (another thread). */
export interface IncrementalHash {
  update(chunk: Uint8Array): void;
  digest(): Buffer | Promise<Buffer>;
}

/**
 * Verification of bytes that arrive in pieces (a download, a tarball being unpacked):
 * `update` with every piece in order, then `verify`. Prehashed signatures need only the
 * running BLAKE2b-512 (from `prehash` when given); a legacy one keeps the bytes (the
 * caller caps their size).
 */
export interface StreamVerifier {
  update(chunk: Uint8Array): void;
  /** Rejects with a PsyError unless both signatures hold over everything given to update. */
  verify(): Promise<VerifiedSignature>;
  /** Stops hashing without a verdict (the caller gave up on the bytes). */
  abandon(): void;
}

/** Starts verifying a file against a signature's text; the key and algorithm are checked at once. */
export function startVerify(
  signatureText: string,
  pk: PublicKey,
  options: VerifyOptions & {prehash?: () => IncrementalHash & {abandon?(): void}} = {},
): StreamVerifier {
  const [sig, source] = precheck(signatureText, pk, options);
  const hash = sig.algorithm === 'prehashed' ? (options.prehash?.() ?? createBlake2b512()) : undefined;
  const kept: Buffer[] = [];
  return {
    update(chunk) {
      if (hash) hash.update(chunk);
      else kept.push(Buffer.from(chunk));
    },
    async verify() {
      return verifyParsed(sig, hash ? await hash.digest() : Buffer.concat(kept), pk, options, source);
    },
    abandon() {
      if (hash && 'abandon' in hash && typeof hash.abandon === 'function') hash.abandon();
    },
  };
}

/**
 * Verifies a file. `signature` is the signature text; when omitted, `<path>.minisig` is
 * read (as `minisign -V -m path` does).
 */
export async function verifyFile(path: string, pk: PublicKey, options: VerifyOptions & {signature?: string} = {}): Promise<VerifiedSignature> {
  let text = options.signature;
  const source = options.source ?? (text === undefined ? `${path}.minisig` : 'signature');
  if (text === undefined) {
    try {
      text = await readFile(`${path}.minisig`, 'utf8');
    } catch (err) {
      throw new PsyError('missing-input', `cannot read ${path}.minisig: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  const [sig] = precheck(text, pk, {...options, source});
  const message = sig.algorithm === 'prehashed' ? await hashFile(path) : await readWhole(path);
  return verifyParsed(sig, message, pk, options, source);
}
