import {readFileSync} from 'node:fs';
import {createRequire} from 'node:module';
import {homedir} from 'node:os';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';
import {PsyError} from '../errors.js';

/**
 * age encryption of node secrets, with the `age-encryption` package (typage, by age's
 * author) in-process: psy needs no age binary, and what it writes is plain age that the
 * `age` CLI decrypts. Only X25519 recipients and identities are made, the kind every
 * age implementation reads.
 */

type AgeModule = typeof import('age-encryption');
let loaded: Promise<AgeModule> | undefined;

/**
 * The package, resolved from psy's own install: rules are compiled into the project's
 * cache, where a bare import would look for node_modules in the project instead.
 */
function age(): Promise<AgeModule> {
  loaded ??= import(pathToFileURL(createRequire(import.meta.url).resolve('age-encryption')).href) as Promise<AgeModule>;
  return loaded;
}

const RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
const IDENTITY = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;

export function isRecipient(s: string): boolean {
  return RECIPIENT.test(s);
}

export async function newIdentity(): Promise<{identity: string; recipient: string}> {
  const a = await age();
  const identity = await a.generateX25519Identity();
  return {identity, recipient: await a.identityToRecipient(identity)};
}

export async function recipientOf(identity: string): Promise<string> {
  return (await age()).identityToRecipient(identity);
}

/** Encrypt to every recipient; ASCII-armored, so the file diffs and commits as text. */
export async function encrypt(data: Uint8Array, recipients: readonly string[]): Promise<string> {
  const a = await age();
  const e = new a.Encrypter();
  for (const r of recipients) e.addRecipient(r);
  return a.armor.encode(await e.encrypt(data));
}

/** Decrypt an armored file; `what` names it in errors. */
export async function decrypt(armored: string, identities: Identities, what: string): Promise<Uint8Array> {
  const a = await age();
  let raw: Uint8Array;
  try {
    raw = a.armor.decode(armored);
  } catch (err) {
    throw new PsyError('corrupt-secrets', `${what}: not an age-encrypted file (${firstLine(err)})`);
  }
  const d = new a.Decrypter();
  for (const id of identities.keys) d.addIdentity(id);
  try {
    return await d.decrypt(raw);
  } catch (err) {
    const msg = firstLine(err);
    if (/no identity matched/i.test(msg)) {
      throw new PsyError(
        'wrong-identity',
        `${what}: cannot be decrypted with the age identity from ${identities.source} (it is not one of the file's recipients)`,
      );
    }
    throw new PsyError('corrupt-secrets', `${what}: damaged age file (${msg})`);
  }
}

export interface Identities {
  readonly keys: readonly string[];
  /** Where they came from, for messages (never the key itself). */
  readonly source: string;
}

export const IDENTITY_ENV = 'PSY_AGE_IDENTITY';

/** ~/.config/psy/age.key (XDG_CONFIG_HOME respected). */
export function defaultIdentityFile(env: NodeJS.ProcessEnv): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'psy', 'age.key');
}

/**
 * The operator's age identities: PSY_AGE_IDENTITY holds either a key
 * (AGE-SECRET-KEY-1...) or the path of an identity file as `age -i` takes it (comments
 * and several keys allowed); else ~/.config/psy/age.key.
 */
export function loadIdentities(env: NodeJS.ProcessEnv = process.env): Identities {
  const value = env[IDENTITY_ENV]?.trim();
  if (value !== undefined && value !== '' && value.startsWith('AGE-SECRET-KEY-')) {
    const keys = parseIdentities(value, IDENTITY_ENV);
    return {keys, source: IDENTITY_ENV};
  }
  const file = value !== undefined && value !== '' ? value : defaultIdentityFile(env);
  const source = value !== undefined && value !== '' ? `${IDENTITY_ENV} (${file})` : file;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new PsyError(
      'no-identity',
      `no age identity to decrypt node secrets: ${source} cannot be read; set ${IDENTITY_ENV} to an identity file (age-keygen -o FILE) or to the key itself`,
    );
  }
  return {keys: parseIdentities(text, source), source};
}

function parseIdentities(text: string, source: string): string[] {
  const keys = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (keys.length === 0) throw new PsyError('bad-identity', `${source}: no age identity in it`);
  for (const k of keys) {
    if (!IDENTITY.test(k)) throw new PsyError('bad-identity', `${source}: not an age X25519 identity (AGE-SECRET-KEY-1...)`);
  }
  return keys;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
