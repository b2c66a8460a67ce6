import {spawnSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {
  blake2b,
  formatPublicKey,
  formatSecretKey,
  formatTrustedComment,
  generateKeyPair,
  INTERACTIVE_KDF,
  keyIdHex,
  parsePublicKey,
  parseSecretKey,
  parseSignature,
  parseTrustedComment,
  scryptParams,
  SENSITIVE_KDF,
  secretKeyIsEncrypted,
  signBytes,
  signFile,
  verifyBytes,
  verifyFile,
} from '../src/sign/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-sign-'));
});
afterEach(() => {
  rmSync(dir, {recursive: true, force: true});
});

function minisign(args: string[], input?: string): {status: number | null; stdout: string; stderr: string} {
  const r = spawnSync('minisign', args, {cwd: dir, input: input ?? '', encoding: 'utf8'});
  return {status: r.status, stdout: r.stdout, stderr: r.stderr};
}

const TC = 'type=psyopsOS filename=psyopsOS.x86_64.20250101-000000.tar version=20250101-000000';

function payload(name = 'payload.tar', size = 300_000): string {
  const p = join(dir, name);
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) buf[i] = (i * 31 + (i >> 8)) & 0xff;
  writeFileSync(p, buf);
  return p;
}

async function minisignPlainKey(): Promise<{pubText: string; keyText: string}> {
  const r = minisign(['-G', '-W', '-f', '-p', 'm.pub', '-s', 'm.key']);
  expect(r.status, r.stderr).toBe(0);
  return {pubText: readFileSync(join(dir, 'm.pub'), 'utf8'), keyText: readFileSync(join(dir, 'm.key'), 'utf8')};
}

describe('BLAKE2b', () => {
  it('matches node for 64-byte digests across block boundaries', () => {
    for (const n of [0, 1, 127, 128, 129, 256, 1000]) {
      const d = Buffer.alloc(n, n & 0xff);
      expect(blake2b(d).toString('hex')).toBe(createHash('blake2b512').update(d).digest('hex'));
    }
  });
  it('computes BLAKE2b-256 (the RFC 7693 / libsodium value for "abc")', () => {
    expect(blake2b(Buffer.from('abc'), 32).toString('hex')).toBe('bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319');
  });
});

describe('scrypt parameters follow libsodium', () => {
  it('maps minisign and interactive limits', () => {
    expect(scryptParams(SENSITIVE_KDF)).toEqual({N: 2 ** 20, r: 8, p: 1});
    expect(scryptParams(INTERACTIVE_KDF)).toEqual({N: 2 ** 14, r: 8, p: 1});
  });
});

describe('trusted comments', () => {
  it('round-trips key=value pairs in order', () => {
    const f = parseTrustedComment(TC);
    expect(f).toEqual({type: 'psyopsOS', filename: 'psyopsOS.x86_64.20250101-000000.tar', version: '20250101-000000'});
    expect(Object.keys(f)).toEqual(['type', 'filename', 'version']);
    expect(formatTrustedComment(f)).toBe(TC);
    expect(formatTrustedComment({size: 12, a: 'b'})).toBe('size=12 a=b');
  });
  it('rejects what is not strictly key=value', () => {
    expect(() => parseTrustedComment('timestamp:1700000000\tfile:x hashed')).toThrow(/not a key=value/);
    expect(() => parseTrustedComment('a=1  b=2')).toThrow(/not a key=value/);
    expect(() => parseTrustedComment('a=1 a=2')).toThrow(/duplicate key 'a'/);
    expect(() => parseTrustedComment('a=')).toThrow(/bad value/);
    expect(() => parseTrustedComment('a=b=c')).toThrow(/bad value/);
    expect(() => parseTrustedComment('')).toThrow(/empty/);
    expect(() => formatTrustedComment({a: 'has space'})).toThrow(/bad trusted comment value for 'a'/);
    expect(() => formatTrustedComment({'b a': 'x'})).toThrow(/key/);
    expect(() => formatTrustedComment({})).toThrow(/no fields/);
  });
});

describe('psy signatures are accepted by minisign', () => {
  it('signs with a minisign -W key (prehashed and legacy) and minisign -V verifies', async () => {
    const {pubText, keyText} = await minisignPlainKey();
    const sk = await parseSecretKey(keyText, {source: 'm.key'});
    expect(keyIdHex(sk.keyId)).toBe(keyIdHex(parsePublicKey(pubText).keyId));
    const file = payload();
    writeFileSync(`${file}.minisig`, await signFile(file, sk, {trustedComment: TC}));
    const ok = minisign(['-V', '-p', 'm.pub', '-m', file]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('Signature and comment signature verified');
    expect(ok.stdout).toContain(`Trusted comment: ${TC}`);

    writeFileSync(join(dir, 'legacy.minisig'), await signFile(file, sk, {trustedComment: TC, algorithm: 'legacy'}));
    expect(minisign(['-V', '-p', 'm.pub', '-m', file, '-x', 'legacy.minisig']).status).toBe(0);
    // -H demands prehashed: proves the legacy one really is the legacy format
    expect(minisign(['-V', '-H', '-p', 'm.pub', '-m', file, '-x', 'legacy.minisig']).status).not.toBe(0);
    expect(minisign(['-V', '-H', '-p', 'm.pub', '-m', file]).status).toBe(0);
  });

  it('generates keys minisign uses: plain, and scrypt-encrypted with a password on stdin', async () => {
    const plain = generateKeyPair();
    writeFileSync(join(dir, 'p.pub'), formatPublicKey(plain.publicKey));
    writeFileSync(join(dir, 'p.key'), await formatSecretKey(plain.secretKey));
    const file = payload();
    const s1 = minisign(['-S', '-s', 'p.key', '-m', file, '-t', TC, '-x', 'p.minisig']);
    expect(s1.status, s1.stderr).toBe(0);
    expect(minisign(['-V', '-p', 'p.pub', '-m', file, '-x', 'p.minisig']).status).toBe(0);
    const v1 = await verifyFile(file, plain.publicKey, {signature: readFileSync(join(dir, 'p.minisig'), 'utf8')});
    expect(v1).toMatchObject({algorithm: 'prehashed', trustedComment: TC, keyId: keyIdHex(plain.publicKey.keyId)});

    const enc = generateKeyPair();
    const encText = await formatSecretKey(enc.secretKey, {password: 'correct horse', kdf: INTERACTIVE_KDF});
    expect(secretKeyIsEncrypted(encText)).toBe(true);
    writeFileSync(join(dir, 'e.key'), encText);
    writeFileSync(join(dir, 'e.pub'), formatPublicKey(enc.publicKey));
    const s2 = minisign(['-S', '-s', 'e.key', '-m', file, '-t', TC, '-x', 'e.minisig'], 'correct horse\n');
    expect(s2.status, s2.stderr).toBe(0);
    expect(minisign(['-V', '-p', 'e.pub', '-m', file, '-x', 'e.minisig']).status).toBe(0);
    const bad = minisign(['-S', '-s', 'e.key', '-m', file, '-t', TC, '-x', 'bad.minisig'], 'wrong\n');
    expect(bad.status).not.toBe(0);
    // and psy reads its own encrypted key back
    const back = await parseSecretKey(encText, {password: 'correct horse'});
    expect(back.seed.equals(enc.secretKey.seed)).toBe(true);
  });
});

describe('minisign signatures are accepted by psy', () => {
  it('verifies prehashed and legacy signatures and returns the trusted comment', async () => {
    const {pubText} = await minisignPlainKey();
    const pk = parsePublicKey(pubText, 'm.pub');
    const file = payload();
    expect(minisign(['-S', '-s', 'm.key', '-m', file, '-t', TC, '-x', 'ed.minisig']).status).toBe(0);
    expect(minisign(['-S', '-l', '-s', 'm.key', '-m', file, '-t', TC, '-x', 'leg.minisig']).status).toBe(0);
    const ed = readFileSync(join(dir, 'ed.minisig'), 'utf8');
    const leg = readFileSync(join(dir, 'leg.minisig'), 'utf8');
    expect(parseSignature(ed).algorithm).toBe('prehashed');
    expect(parseSignature(leg).algorithm).toBe('legacy');
    expect(await verifyFile(file, pk, {signature: ed})).toMatchObject({algorithm: 'prehashed', trustedComment: TC});
    expect(verifyBytes(readFileSync(file), leg, pk)).toMatchObject({algorithm: 'legacy', trustedComment: TC});
    expect(() => verifyBytes(readFileSync(file), leg, pk, {allowLegacy: false})).toThrow(/legacy/);
    // the bare base64 line (as printed by minisign) works as a public key too
    expect(keyIdHex(parsePublicKey(pubText.split('\n')[1]!).keyId)).toBe(keyIdHex(pk.keyId));
  });

  it('decrypts a password-protected minisign key (minisign default scrypt cost)', async () => {
    const g = minisign(['-G', '-f', '-p', 'e.pub', '-s', 'e.key'], 'pw123\npw123\n');
    expect(g.status, g.stderr).toBe(0);
    const keyText = readFileSync(join(dir, 'e.key'), 'utf8');
    const sk = await parseSecretKey(keyText, {password: 'pw123', source: 'e.key'});
    const pk = parsePublicKey(readFileSync(join(dir, 'e.pub'), 'utf8'));
    expect(sk.key.equals(pk.key)).toBe(true);
    const file = payload();
    writeFileSync(join(dir, 'n.minisig'), await signFile(file, sk, {trustedComment: TC}));
    expect(minisign(['-V', '-p', 'e.pub', '-m', file, '-x', 'n.minisig']).status).toBe(0);
    await expect(parseSecretKey(keyText, {source: 'e.key'})).rejects.toMatchObject({code: 'password-required'});
  }, 240_000); // two 1 GiB scrypt runs (minisign's and psy's) on a shared machine

  it('tells a wrong password from a right one', async () => {
    const kp = generateKeyPair();
    const text = await formatSecretKey(kp.secretKey, {password: 'right', kdf: INTERACTIVE_KDF});
    await expect(parseSecretKey(text, {password: 'wrong', source: 'e.key'})).rejects.toMatchObject({
      code: 'bad-password',
      message: 'e.key: wrong password (or corrupted key file)',
    });
    expect((await parseSecretKey(text, {password: 'right'})).seed.equals(kp.secretKey.seed)).toBe(true);
  });
});

describe('tampering and bad input are caught', () => {
  it('refuses an altered file, an altered trusted comment, another key and another file', async () => {
    const kp = generateKeyPair();
    const other = generateKeyPair();
    const file = payload();
    const sig = await signFile(file, kp.secretKey, {trustedComment: TC});
    writeFileSync(`${file}.minisig`, sig);
    expect((await verifyFile(file, kp.publicKey)).trustedComment).toBe(TC);

    const data = readFileSync(file);
    data[1234] = data[1234]! ^ 1;
    expect(() => verifyBytes(data, sig, kp.publicKey, {source: 'x.minisig'})).toThrow(
      'x.minisig: signature verification failed: the file does not match its signature',
    );

    const edited = sig.replace('version=20250101-000000', 'version=20990101-000000');
    expect(edited).not.toBe(sig);
    expect(() => verifyBytes(readFileSync(file), edited, kp.publicKey)).toThrow(/trusted comment was altered/);
    writeFileSync(join(dir, 'edited.minisig'), edited);
    writeFileSync(join(dir, 'k.pub'), formatPublicKey(kp.publicKey));
    expect(minisign(['-V', '-p', 'k.pub', '-m', file, '-x', 'edited.minisig']).status).not.toBe(0);

    try {
      verifyBytes(readFileSync(file), sig, other.publicKey);
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({code: 'key-mismatch'});
      expect((err as Error).message).toContain(keyIdHex(kp.publicKey.keyId));
    }

    const second = payload('other.tar', 1000);
    await expect(verifyFile(second, kp.publicKey, {signature: sig})).rejects.toMatchObject({code: 'bad-signature'});
    await expect(verifyFile(join(dir, 'missing.tar'), kp.publicKey)).rejects.toMatchObject({code: 'missing-input'});
  });

  it('refuses corrupted key and signature files with a one-line reason', async () => {
    const kp = generateKeyPair();
    const text = await formatSecretKey(kp.secretKey);
    const raw = Buffer.from(text.split('\n')[1]!, 'base64');
    raw[80] = raw[80]! ^ 0xff; // inside the seed
    const corrupted = `untrusted comment: x\n${raw.toString('base64')}\n`;
    await expect(parseSecretKey(corrupted, {source: 'dev.key'})).rejects.toMatchObject({
      code: 'bad-key',
      message: expect.stringMatching(/^dev\.key: .*corrupted/),
    });
    await expect(parseSecretKey('untrusted comment: x\nRWQAAA==\n', {source: 'dev.key'})).rejects.toMatchObject({
      code: 'bad-key',
    });
    await expect(parseSecretKey('not base64 at all!\n', {source: 'dev.key'})).rejects.toThrow(/not valid base64/);
    expect(() => parsePublicKey('untrusted comment: x\n', 'k.pub')).toThrow(/k\.pub/);
    const sig = signBytes(Buffer.from('x'), kp.secretKey, {trustedComment: 'a=b'});
    expect(() => parseSignature(sig.split('\n').slice(0, 2).join('\n'), 's.minisig')).toThrow(/s\.minisig: no trusted comment/);
    expect(() => parseSignature('hello', 's.minisig')).toThrow(/not a minisign signature/);
    expect(() => signBytes(Buffer.from('x'), kp.secretKey, {trustedComment: 'a=b\nc=d'})).toThrow(/one line/);
  });
});
