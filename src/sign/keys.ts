import {createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject} from 'node:crypto';
import {PsyError, printable} from '../errors.js';
import {blake2b} from './blake2b.js';
import {boundedScryptParams, deriveKeystream, SENSITIVE_KDF, type KdfLimits} from './scrypt.js';

/*
 * minisign key formats (one base64 line after an "untrusted comment:" line):
 *   public:  "Ed" | keyid[8] | pk[32]
 *   secret:  "Ed" | kdf[2] ("Sc" or 00 00) | "B2" | salt[32] | opslimit[8 LE] | memlimit[8 LE]
 *            | keyid[8] | seed[32] | pk[32] | chk[32]     (the last 104 bytes XORed with
 *            scrypt(password) when kdf = "Sc"; chk = BLAKE2b-256("Ed" | keyid | seed | pk))
 */

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SECRET_KEY_BYTES = 158;
const KEYNUM_OFFSET = 54;
const KEYNUM_BYTES = 104;

export interface PublicKey {
  /** 8 bytes as stored in files. */
  readonly keyId: Buffer;
  /** Raw Ed25519 public key, 32 bytes. */
  readonly key: Buffer;
}

export interface SecretKey extends PublicKey {
  /** Ed25519 seed, 32 bytes. */
  readonly seed: Buffer;
}

export interface KeyPair {
  readonly publicKey: PublicKey;
  readonly secretKey: SecretKey;
}

/** The key id as minisign prints it (little-endian number in upper-case hex). */
export function keyIdHex(keyId: Uint8Array): string {
  return Buffer.from(keyId).reverse().toString('hex').toUpperCase();
}

export function generateKeyPair(): KeyPair {
  const {privateKey} = generateKeyPairSync('ed25519');
  const seed = privateKey.export({format: 'der', type: 'pkcs8'}).subarray(PKCS8_PREFIX.length);
  return keyPairFromSeed(Buffer.from(seed), randomBytes(8));
}

export function keyPairFromSeed(seed: Buffer, keyId: Buffer): KeyPair {
  const key = publicFromSeed(seed);
  return {publicKey: {keyId, key}, secretKey: {keyId, key, seed}};
}

function publicFromSeed(seed: Buffer): Buffer {
  return Buffer.from(createPublicKey(privateKeyObject(seed)).export({format: 'der', type: 'spki'}).subarray(SPKI_PREFIX.length));
}

export function privateKeyObject(seed: Uint8Array): KeyObject {
  return createPrivateKey({key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8'});
}

export function publicKeyObject(key: Uint8Array): KeyObject {
  return createPublicKey({key: Buffer.concat([SPKI_PREFIX, key]), format: 'der', type: 'spki'});
}

/** Picks the base64 payload line of a minisign key or signature file. */
function payloadLine(text: string, source: string, what: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const first = lines[0];
  if (first === undefined) throw new PsyError('bad-key', `${source}: empty ${what}`);
  if (first.startsWith('untrusted comment:')) {
    const second = lines[1];
    if (second === undefined) throw new PsyError('bad-key', `${source}: ${what} has no key line`);
    return second;
  }
  return first;
}

function decodeBase64(line: string, source: string, what: string): Buffer {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(line)) {
    throw new PsyError('bad-key', `${source}: ${what} is not valid base64`);
  }
  return Buffer.from(line, 'base64');
}

/** Parses a minisign public key file, or the bare base64 key line (as `minisign -P`). */
export function parsePublicKey(text: string, source = 'public key'): PublicKey {
  const raw = decodeBase64(payloadLine(text, source, 'public key'), source, 'public key');
  if (raw.length !== 42 || raw.toString('latin1', 0, 2) !== 'Ed') {
    throw new PsyError('bad-key', `${source}: not a minisign Ed25519 public key`);
  }
  return {keyId: raw.subarray(2, 10), key: raw.subarray(10, 42)};
}

export function formatPublicKey(pk: PublicKey): string {
  const line = Buffer.concat([Buffer.from('Ed'), pk.keyId, pk.key]).toString('base64');
  return `untrusted comment: minisign public key ${keyIdHex(pk.keyId)}\n${line}\n`;
}

function checksum(keyId: Uint8Array, seed: Uint8Array, key: Uint8Array): Buffer {
  return blake2b(Buffer.concat([Buffer.from('Ed'), keyId, seed, key]), 32);
}

export function secretKeyIsEncrypted(text: string, source = 'secret key'): boolean {
  const raw = decodeSecretKeyBytes(text, source);
  return raw.toString('latin1', 2, 4) === 'Sc';
}

function decodeSecretKeyBytes(text: string, source: string): Buffer {
  const raw = decodeBase64(payloadLine(text, source, 'secret key'), source, 'secret key');
  if (raw.length !== SECRET_KEY_BYTES || raw.toString('latin1', 0, 2) !== 'Ed' || raw.toString('latin1', 4, 6) !== 'B2') {
    throw new PsyError('bad-key', `${source}: not a minisign Ed25519 secret key (corrupted or wrong file)`);
  }
  const kdf = raw.subarray(2, 4);
  if (!(kdf.toString('latin1') === 'Sc' || (kdf[0] === 0 && kdf[1] === 0))) {
    throw new PsyError('bad-key', `${source}: unsupported key derivation '${printable(kdf.toString('latin1'))}'`);
  }
  return raw;
}

/**
 * Decodes a minisign secret key file. Encrypted keys need `password`; a wrong password
 * and a damaged file are told apart where the format allows (checksum vs. structure).
 */
export async function parseSecretKey(text: string, options: {password?: string | undefined; source?: string} = {}): Promise<SecretKey> {
  const source = options.source ?? 'secret key';
  const raw = decodeSecretKeyBytes(text, source);
  const encrypted = raw.toString('latin1', 2, 4) === 'Sc';
  const body = Buffer.from(raw.subarray(KEYNUM_OFFSET, KEYNUM_OFFSET + KEYNUM_BYTES));
  if (encrypted) {
    if (options.password === undefined) {
      throw new PsyError('password-required', `${source}: the key is password-protected and no password was given`);
    }
    const ops = raw.readBigUInt64LE(38);
    const mem = raw.readBigUInt64LE(46);
    const limits = {opslimit: Number(ops), memlimit: Number(mem)};
    const bounded = boundedScryptParams(limits);
    if ('tooMuch' in bounded) {
      throw new PsyError(
        'bad-key',
        `${source}: corrupted key file: its key derivation limits (opslimit ${ops}, memlimit ${mem}) ask for ${bounded.tooMuch}, more than psy allows`,
      );
    }
    let stream: Buffer;
    try {
      stream = await deriveKeystream(options.password, raw.subarray(6, 38), KEYNUM_BYTES, limits);
    } catch (err) {
      // Node refuses some parameters outright; that is the file's fault too.
      throw new PsyError(
        'bad-key',
        `${source}: corrupted key file: scrypt refused its key derivation limits (opslimit ${ops}, memlimit ${mem}): ${(err as Error).message.split('\n')[0]}`,
      );
    }
    for (let i = 0; i < KEYNUM_BYTES; i++) body[i] = body[i]! ^ stream[i]!;
  }
  const keyId = body.subarray(0, 8);
  const seed = body.subarray(8, 40);
  const key = body.subarray(40, 72);
  const chk = body.subarray(72, 104);
  const sumOk = checksum(keyId, seed, key).equals(chk);
  // minisign -W writes unencrypted keys with an all-zero checksum.
  const zeroSum = !encrypted && chk.every((b) => b === 0);
  if (!sumOk && !zeroSum) {
    throw encrypted
      ? new PsyError('bad-password', `${source}: wrong password (or corrupted key file)`)
      : new PsyError('bad-key', `${source}: checksum mismatch, the key file is corrupted`);
  }
  if (!publicFromSeed(Buffer.from(seed)).equals(key)) {
    throw new PsyError('bad-key', `${source}: secret and public halves do not match, the key file is corrupted`);
  }
  return {keyId: Buffer.from(keyId), key: Buffer.from(key), seed: Buffer.from(seed)};
}

/**
 * Writes a secret key the way minisign does. With a password it is scrypt-encrypted
 * (default cost = minisign's, ~1 GiB and seconds; pass `kdf` to choose); without, it is
 * stored in the clear like `minisign -G -W`.
 */
export async function formatSecretKey(sk: SecretKey, options: {password?: string | undefined; kdf?: KdfLimits} = {}): Promise<string> {
  const raw = Buffer.alloc(SECRET_KEY_BYTES);
  raw.write('Ed', 0, 'latin1');
  raw.write('B2', 4, 'latin1');
  const body = Buffer.concat([sk.keyId, sk.seed, sk.key, checksum(sk.keyId, sk.seed, sk.key)]);
  if (options.password !== undefined) {
    const limits = options.kdf ?? SENSITIVE_KDF;
    const salt = randomBytes(32);
    raw.write('Sc', 2, 'latin1');
    salt.copy(raw, 6);
    raw.writeBigUInt64LE(BigInt(limits.opslimit), 38);
    raw.writeBigUInt64LE(BigInt(limits.memlimit), 46);
    const stream = await deriveKeystream(options.password, salt, KEYNUM_BYTES, limits);
    for (let i = 0; i < KEYNUM_BYTES; i++) body[i] = body[i]! ^ stream[i]!;
  } else {
    body.fill(0, 72);
  }
  body.copy(raw, KEYNUM_OFFSET);
  return `untrusted comment: minisign encrypted secret key\n${raw.toString('base64')}\n`;
}
