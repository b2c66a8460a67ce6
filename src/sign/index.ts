/**
 * minisign-compatible signing: keys (plain and scrypt-encrypted), prehashed and legacy
 * signatures, and trusted comments as key=value metadata.
 */
export {blake2b, blake2b512Impl, createBlake2b512} from './blake2b.js';
export {
  formatPublicKey,
  formatSecretKey,
  generateKeyPair,
  keyIdHex,
  parsePublicKey,
  parseSecretKey,
  secretKeyIsEncrypted,
  type KeyPair,
  type PublicKey,
  type SecretKey,
} from './keys.js';
export {INTERACTIVE_KDF, SENSITIVE_KDF, scryptParams, type KdfLimits} from './scrypt.js';
export {
  parseSignature,
  signBytes,
  signFile,
  startVerify,
  verifyBytes,
  verifyFile,
  verifyTrustedComment,
  type ParsedSignature,
  type SignatureAlgorithm,
  type SignOptions,
  type IncrementalHash,
  type StreamVerifier,
  type VerifiedSignature,
  type VerifyOptions,
} from './signature.js';
export {formatTrustedComment, parseTrustedComment, type TrustedFields} from './trusted-comment.js';
