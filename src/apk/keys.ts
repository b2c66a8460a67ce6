import {createPublicKey, generateKeyPairSync, type KeyObject} from 'node:crypto';
import {readdirSync, readFileSync, statSync} from 'node:fs';
import {join} from 'node:path';
import {PsyError} from '../errors.js';

/**
 * Trusted APK signing keys by file name. APK v2 signatures name their key by the file
 * name of the public key (`.SIGN.RSA.<name>`), as in /etc/apk/keys.
 */
export interface Keyring {
  readonly keys: ReadonlyMap<string, KeyObject>;
  /** Where the keys came from, for messages. */
  readonly source: string;
}

/** Loads every public key file (PEM) of one or more folders. Later folders win on equal names. */
export function loadKeyring(dirs: string | readonly string[]): Keyring {
  const list = typeof dirs === 'string' ? [dirs] : dirs;
  const keys = new Map<string, KeyObject>();
  for (const dir of list) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (err) {
      throw new PsyError('apk-keys', `keys folder ${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    for (const name of names) {
      const path = join(dir, name);
      if (!statSync(path).isFile()) continue;
      keys.set(name, parsePublicKey(readFileSync(path), path));
    }
  }
  return {keys, source: list.join(', ')};
}

export function keyringFromPem(entries: ReadonlyArray<readonly [string, string | Buffer]>, source = 'keys'): Keyring {
  return {keys: new Map(entries.map(([n, pem]) => [n, parsePublicKey(pem, n)])), source};
}

function parsePublicKey(pem: string | Buffer, where: string): KeyObject {
  try {
    return createPublicKey(pem);
  } catch {
    throw new PsyError('apk-keys', `${where} is not a PEM public key`);
  }
}

/** An abuild-style signing key: RSA private key and the public key's file name. */
export interface SigningKey {
  /** File name of the public key, e.g. `psy-5f1c2a3b.rsa.pub`; signatures carry it. */
  readonly name: string;
  /** PEM (PKCS#8) private key. */
  readonly privateKeyPem: string;
  /** PEM (SPKI, "BEGIN PUBLIC KEY") public key, the format of /etc/apk/keys. */
  readonly publicKeyPem: string;
}

/**
 * Generates an RSA key pair as abuild-keygen does (RSA, e = 65537). The name follows
 * abuild's `<identity>-<hex time>.rsa.pub` shape; pass `identity` and `stamp` to fix it.
 */
export function generateSigningKey(identity: string, stamp: number, bits = 2048): SigningKey {
  if (!/^[A-Za-z0-9@._+-]+$/.test(identity)) {
    throw new PsyError('apk-keys', `key identity '${identity}' may only hold letters, digits and @._+-`);
  }
  const {privateKey, publicKey} = generateKeyPairSync('rsa', {modulusLength: bits, publicExponent: 0x10001});
  return {
    name: `${identity}-${Math.floor(stamp).toString(16).padStart(8, '0')}.rsa.pub`,
    privateKeyPem: privateKey.export({type: 'pkcs8', format: 'pem'}).toString(),
    publicKeyPem: publicKey.export({type: 'spki', format: 'pem'}).toString(),
  };
}
