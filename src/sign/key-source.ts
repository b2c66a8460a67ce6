import {mkdir, readFile} from 'node:fs/promises';
import {isAbsolute, join, relative, resolve} from 'node:path';
import {PsyError} from '../errors.js';
import {writeFileAtomic} from '../fs/atomic-write.js';
import {runTool} from '../tools/run.js';
import {
  formatPublicKey,
  formatSecretKey,
  generateKeyPair,
  parsePublicKey,
  parseSecretKey,
  secretKeyIsEncrypted,
  type PublicKey,
  type SecretKey,
} from './keys.js';

/** `config.settings.signing`, validated. Paths are relative to the project root. */
export interface SigningSettings {
  /** minisign secret key file. */
  readonly secretKey?: string;
  /** minisign public key file (verification; publish checks the key pair matches). */
  readonly publicKey?: string;
  /** File whose first line is the secret key's password. */
  readonly passwordFile?: string;
  /** Command printing the password on stdout, e.g. ['gopass', 'show', '-o', 'minisign.pw']. */
  readonly passwordCommand?: readonly string[];
  /** Environment variable holding the password (default PSY_SIGNING_PASSWORD). */
  readonly passwordEnv?: string;
}

export const DEV_KEY_DIR = 'cache/signing';

function fail(field: string, what: string): never {
  throw new PsyError('bad-config', `settings.signing.${field}: ${what}`);
}

export function parseSigningSettings(value: unknown): SigningSettings {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new PsyError('bad-config', 'settings.signing must be an object');
  }
  const v = value as Record<string, unknown>;
  const known = new Set(['secretKey', 'publicKey', 'passwordFile', 'passwordCommand', 'passwordEnv']);
  for (const k of Object.keys(v)) if (!known.has(k)) fail(k, `unknown setting (known: ${[...known].join(', ')})`);
  const str = (k: string): string | undefined => {
    const x = v[k];
    if (x === undefined) return undefined;
    if (typeof x !== 'string' || x.length === 0) fail(k, 'must be a non-empty string');
    return x;
  };
  const cmd = v['passwordCommand'];
  if (cmd !== undefined && (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((c) => typeof c === 'string'))) {
    fail('passwordCommand', 'must be a non-empty array of strings');
  }
  const out: {-readonly [K in keyof SigningSettings]: SigningSettings[K]} = {};
  const secretKey = str('secretKey');
  const publicKey = str('publicKey');
  const passwordFile = str('passwordFile');
  const passwordEnv = str('passwordEnv');
  if (secretKey !== undefined) out.secretKey = secretKey;
  if (publicKey !== undefined) out.publicKey = publicKey;
  if (passwordFile !== undefined) out.passwordFile = passwordFile;
  if (passwordEnv !== undefined) out.passwordEnv = passwordEnv;
  if (cmd !== undefined) out.passwordCommand = cmd as string[];
  return out;
}

export interface KeySourceOptions {
  /** Project root; relative paths and the development key live under it. */
  readonly root: string;
  readonly settings: SigningSettings;
  readonly env: NodeJS.ProcessEnv;
  /** Explicit key path (command-line flag); wins over everything else. */
  readonly keyPath?: string | undefined;
  readonly publicKeyPath?: string | undefined;
  /** Asks for a password interactively; absent when there is no terminal. */
  readonly prompt?: ((question: string) => Promise<string>) | undefined;
  /** Where warnings go (the development key warning). */
  readonly warn: (line: string) => void;
}

export interface ResolvedSecretKey {
  readonly secretKey: SecretKey;
  readonly publicKey: PublicKey;
  /** Where the key came from, for messages. */
  readonly path: string;
  readonly development: boolean;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new PsyError('missing-input', `cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

function display(root: string, path: string): string {
  const rel = relative(root, path);
  return rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

async function password(opts: KeySourceOptions, keyLabel: string): Promise<string> {
  const envName = opts.settings.passwordEnv ?? 'PSY_SIGNING_PASSWORD';
  const fromEnv = opts.env[envName];
  if (fromEnv !== undefined) return fromEnv;
  if (opts.settings.passwordFile !== undefined) {
    const text = await readText(resolve(opts.root, opts.settings.passwordFile), 'password file');
    return text.split(/\r?\n/)[0] ?? '';
  }
  const cmd = opts.settings.passwordCommand;
  if (cmd !== undefined) {
    const [file, ...args] = cmd;
    try {
      const {stdout} = await runTool(file!, args, {cwd: opts.root});
      return stdout.toString('utf8').split(/\r?\n/)[0] ?? '';
    } catch (err) {
      throw new PsyError('password-command', `settings.signing.passwordCommand (${cmd.join(' ')}) failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (opts.prompt !== undefined) return opts.prompt(`Password for ${keyLabel}: `);
  throw new PsyError(
    'password-required',
    `${keyLabel} is password-protected: set ${envName}, settings.signing.passwordFile or passwordCommand, or run in a terminal`,
  );
}

/**
 * Finds the signing key: the explicit path, then PSY_SIGNING_KEY, then
 * settings.signing.secretKey; with none of them, a development key under cache/ is
 * created (once) and used, with a warning that it must not sign releases.
 */
export async function resolveSecretKey(opts: KeySourceOptions): Promise<ResolvedSecretKey> {
  const configured = opts.keyPath ?? opts.env['PSY_SIGNING_KEY'] ?? opts.settings.secretKey;
  if (configured === undefined) return developmentKey(opts);
  const path = resolve(opts.root, configured);
  const label = display(opts.root, path);
  const text = await readText(path, 'secret key');
  const pw = secretKeyIsEncrypted(text, label) ? await password(opts, label) : undefined;
  const secretKey = await parseSecretKey(text, {password: pw, source: label});
  const publicKey: PublicKey = {keyId: secretKey.keyId, key: secretKey.key};
  const pubPath = opts.publicKeyPath ?? opts.env['PSY_SIGNING_PUBKEY'] ?? opts.settings.publicKey;
  if (pubPath !== undefined) {
    const abs = resolve(opts.root, pubPath);
    const pk = parsePublicKey(await readText(abs, 'public key'), display(opts.root, abs));
    if (!pk.key.equals(secretKey.key) || !pk.keyId.equals(secretKey.keyId)) {
      throw new PsyError('key-mismatch', `${label} does not belong to the public key ${display(opts.root, abs)}`);
    }
  }
  return {secretKey, publicKey, path: label, development: false};
}

async function developmentKey(opts: KeySourceOptions): Promise<ResolvedSecretKey> {
  const dir = join(opts.root, DEV_KEY_DIR);
  const keyPath = join(dir, 'dev.key');
  const label = display(opts.root, keyPath);
  let text: string;
  try {
    text = await readFile(keyPath, 'utf8');
  } catch {
    const kp = generateKeyPair();
    await mkdir(dir, {recursive: true});
    text = await formatSecretKey(kp.secretKey);
    // public half first, so a key file never exists without its public key
    await writeFileAtomic(join(dir, 'dev.pub'), formatPublicKey(kp.publicKey), 0o644);
    await writeFileAtomic(keyPath, text, 0o600);
  }
  opts.warn(
    `warning: no signing key configured, using the development key ${label}; it must not sign releases ` +
      `(set settings.signing.secretKey or PSY_SIGNING_KEY)`,
  );
  const secretKey = await parseSecretKey(text, {source: label});
  return {secretKey, publicKey: {keyId: secretKey.keyId, key: secretKey.key}, path: label, development: true};
}

/**
 * The verification key: explicit path, PSY_SIGNING_PUBKEY, settings.signing.publicKey,
 * the public half of settings.signing.secretKey's neighbour (<key>.pub), or the
 * development key's public half when no key is configured at all.
 */
export async function resolvePublicKey(opts: KeySourceOptions): Promise<{publicKey: PublicKey; path: string; development: boolean}> {
  const configured = opts.publicKeyPath ?? opts.env['PSY_SIGNING_PUBKEY'] ?? opts.settings.publicKey;
  if (configured !== undefined) {
    const path = resolve(opts.root, configured);
    const label = display(opts.root, path);
    return {publicKey: parsePublicKey(await readText(path, 'public key'), label), path: label, development: false};
  }
  if ((opts.keyPath ?? opts.env['PSY_SIGNING_KEY'] ?? opts.settings.secretKey) !== undefined) {
    throw new PsyError('bad-config', 'no public key configured: set settings.signing.publicKey or PSY_SIGNING_PUBKEY, or pass --pubkey');
  }
  const path = join(opts.root, DEV_KEY_DIR, 'dev.pub');
  const label = display(opts.root, path);
  const text = await readText(path, 'development public key').catch(() => {
    throw new PsyError('missing-input', `no public key configured and no development key at ${label} (set settings.signing.publicKey or pass --pubkey)`);
  });
  opts.warn(`warning: no public key configured, verifying with the development key ${label}`);
  return {publicKey: parsePublicKey(text, label), path: label, development: true};
}

/** Reads a password from a terminal without echoing it. */
export function terminalPrompt(input: NodeJS.ReadStream, output: NodeJS.WritableStream): ((q: string) => Promise<string>) | undefined {
  if (!input.isTTY) return undefined;
  return (question) =>
    new Promise((ok, bad) => {
      // Echo off before the prompt shows: a reply typed the moment it appears must not
      // be echoed by the terminal.
      input.setRawMode(true);
      output.write(question);
      let value = '';
      input.resume();
      input.setEncoding('utf8');
      const done = (err?: Error): void => {
        input.setRawMode(false);
        input.pause();
        input.off('data', onData);
        output.write('\n');
        if (err) bad(err);
        else ok(value);
      };
      const onData = (chunk: string): void => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') return done();
          if (ch === '\u0003') return done(new PsyError('interrupted', 'password entry interrupted'));
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      input.on('data', onData);
    });
}
