import fc from 'fast-check';
import {describe, expect, it} from 'vitest';
import {formatPublicKey, formatSecretKey, generateKeyPair, parsePublicKey, parseSecretKey, secretKeyIsEncrypted} from '../src/sign/keys.js';
import {parseSignature, signBytes, verifyBytes, verifyTrustedComment} from '../src/sign/signature.js';
import {parseTrustedComment} from '../src/sign/trusted-comment.js';
import {fuzzParams, mutatedBytes, mutatedText, parsesOrRefuses, parsesOrRefusesAsync} from './helpers/fuzz.js';

const pair = generateKeyPair();
const data = Buffer.from('psyopsOS.x86_64.20250101-000000.tar');
const comment = 'type=psyopsOS filename=psyopsOS.x86_64.20250101-000000.tar version=20250101-000000 architecture=x86_64 size=123 sha256=ab';
const signatures = [
  signBytes(data, pair.secretKey, {trustedComment: comment}),
  signBytes(data, pair.secretKey, {trustedComment: comment, algorithm: 'legacy'}),
];
const publicKey = formatPublicKey(pair.publicKey);
const secretKey = await formatSecretKey(pair.secretKey);

/** The text with its base64 line's decoded bytes mutated, so changes land inside the structure. */
function withMutatedPayload(text: string, line: number, payload: Buffer): string {
  const lines = text.split('\n');
  lines[line] = payload.toString('base64');
  return lines.join('\n');
}
const payloadOf = (text: string, line: number) => Buffer.from(text.split('\n')[line]!, 'base64');

describe('fuzz: minisign keys, signatures and trusted comments parse or refuse with a PsyError', () => {
  it('signatures: mutated text and mutated signature blobs', () => {
    const texts = fc.oneof(
      mutatedText(signatures),
      mutatedBytes([payloadOf(signatures[0]!, 1)]).map((p) => withMutatedPayload(signatures[0]!, 1, p)),
      mutatedBytes([payloadOf(signatures[0]!, 3)]).map((p) => withMutatedPayload(signatures[0]!, 3, p)),
    );
    fc.assert(
      fc.property(texts, (text) => {
        parsesOrRefuses(() => parseSignature(text, 'fuzz.minisig'));
        parsesOrRefuses(() => verifyTrustedComment(text, pair.publicKey, {source: 'fuzz.minisig'}));
        const verdict = parsesOrRefuses(() => verifyBytes(data, text, pair.publicKey, {source: 'fuzz.minisig'}));
        // a changed trusted comment never verifies
        if (verdict === 'parsed') expect(parseSignature(text).trustedComment).toBe(comment);
      }),
      fuzzParams(1500),
    );
  });

  it('public and (unencrypted) secret keys', async () => {
    const keys = fc.oneof(
      mutatedText([publicKey, secretKey]),
      mutatedBytes([payloadOf(publicKey, 1)]).map((p) => withMutatedPayload(publicKey, 1, p)),
      mutatedBytes([payloadOf(secretKey, 1)]).map((p) => withMutatedPayload(secretKey, 1, p)),
    );
    await fc.assert(
      fc.asyncProperty(keys, async (text) => {
        parsesOrRefuses(() => parsePublicKey(text, 'fuzz.pub'));
        parsesOrRefuses(() => secretKeyIsEncrypted(text, 'fuzz.key'));
        // no password: a key that turned "encrypted" is refused before any key derivation
        await parsesOrRefusesAsync(() => parseSecretKey(text, {source: 'fuzz.key'}));
      }),
      fuzzParams(1500),
    );
  });

  it('trusted comments', () => {
    fc.assert(
      fc.property(fc.oneof(mutatedText([comment]), fc.string({maxLength: 80})), (text) => {
        parsesOrRefuses(() => parseTrustedComment(text, 'fuzz'));
      }),
      fuzzParams(2000),
    );
  });
});
