import {existsSync} from 'node:fs';
import {mkdir} from 'node:fs/promises';
import {dirname, resolve} from 'node:path';
import {loadProjectSettings} from '../../deaddrop/project.js';
import {PsyError} from '../../errors.js';
import {parseSigningSettings, terminalPrompt} from '../../sign/key-source.js';
import {writeFileAtomic} from '../../fs/atomic-write.js';
import {formatPublicKey, formatSecretKey, generateKeyPair, INTERACTIVE_KDF, keyIdHex, SENSITIVE_KDF} from '../../sign/index.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

const help = `Usage: psy keygen [options]

Creates a minisign-compatible Ed25519 key pair. The secret key is encrypted with a
password (scrypt, as minisign does) unless --no-password is given. The password comes
from PSY_SIGNING_PASSWORD (or the variable named by settings.signing.passwordEnv), or is
asked twice on the terminal.

Options:
  -s, --secret-key FILE  where to write the secret key (default: settings.signing.secretKey)
  -p, --public-key FILE  where to write the public key (default: settings.signing.publicKey,
                         else the secret key's path with .pub)
  -W, --no-password      store the secret key unencrypted (like minisign -G -W)
      --fast-kdf         cheaper scrypt (16 MiB instead of 1 GiB); for test keys only
  -f, --force            overwrite existing key files
      --config FILE      use FILE instead of build.config.ts`;

export const command: Command = {
  name: 'keygen',
  summary: 'create a minisign-compatible signing key pair',
  help,
  async run(argv, io) {
    const {values} = parseCommandArgs(
      'keygen',
      argv,
      {
        'secret-key': {type: 'string', short: 's'},
        'public-key': {type: 'string', short: 'p'},
        'no-password': {type: 'boolean', short: 'W'},
        'fast-kdf': {type: 'boolean'},
        force: {type: 'boolean', short: 'f'},
        config: {type: 'string'},
      },
      false,
    );
    const project = await loadProjectSettings(io.cwd, values.config, false);
    const signing = parseSigningSettings(project.settings['signing']);
    const base = values['secret-key'] !== undefined ? io.cwd : project.root;
    const secretArg = values['secret-key'] ?? signing.secretKey;
    if (secretArg === undefined) {
      throw new PsyError('usage', 'no secret key path: pass --secret-key FILE or set settings.signing.secretKey');
    }
    const secretPath = resolve(base, secretArg);
    const publicPath =
      values['public-key'] !== undefined
        ? resolve(io.cwd, values['public-key'])
        : signing.publicKey !== undefined
          ? resolve(project.root, signing.publicKey)
          : secretPath.replace(/(\.key)?$/, '.pub');
    if (publicPath === secretPath) throw new PsyError('usage', 'the public and secret key paths are the same file');
    if (values.force !== true) {
      for (const p of [secretPath, publicPath]) {
        if (existsSync(p)) throw new PsyError('exists', `${p} already exists (use --force to overwrite)`);
      }
    }
    let password: string | undefined;
    if (values['no-password'] !== true) {
      const envName = signing.passwordEnv ?? 'PSY_SIGNING_PASSWORD';
      password = io.env[envName];
      if (password === undefined) {
        const prompt = terminalPrompt(process.stdin, io.stderr);
        if (prompt === undefined) {
          throw new PsyError('password-required', `no password: set ${envName}, run in a terminal, or pass --no-password`);
        }
        password = await prompt('Password for the new key: ');
        if ((await prompt('Password again: ')) !== password) throw new PsyError('password-mismatch', 'the passwords differ');
      }
      if (password === '') throw new PsyError('password-required', 'empty password (use --no-password for an unencrypted key)');
    }
    const kp = generateKeyPair();
    const secretText = await formatSecretKey(kp.secretKey, {password, kdf: values['fast-kdf'] === true ? INTERACTIVE_KDF : SENSITIVE_KDF});
    await mkdir(dirname(secretPath), {recursive: true});
    await mkdir(dirname(publicPath), {recursive: true});
    await writeFileAtomic(publicPath, formatPublicKey(kp.publicKey), 0o644);
    await writeFileAtomic(secretPath, secretText, 0o600);
    writeLine(io.stdout, `key ID ${keyIdHex(kp.publicKey.keyId)}${password === undefined ? ' (unencrypted)' : ''}`);
    writeLine(io.stdout, `secret key: ${secretPath}`);
    writeLine(io.stdout, `public key: ${publicPath}`);
    return 0;
  },
};
