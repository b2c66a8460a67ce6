import {existsSync, mkdirSync, readdirSync, writeFileSync} from 'node:fs';
import {isAbsolute, join, relative, resolve} from 'node:path';
import {writeFileAtomicSync} from '../fs/atomic-write.js';
import {generateSigningKey, type SigningKey} from './keys.js';
import {loadSigningKey} from './package-builder.js';

/** Where the development APK signing key lives when no build key is configured. */
export const DEV_APK_KEY_DIR = 'cache/apk-signing';

export interface ApkBuildKey {
  readonly key: SigningKey;
  /** Where it came from, relative to the project when inside it. */
  readonly path: string;
  readonly development: boolean;
}

/**
 * The key our APK repository is signed with: the configured abuild private key
 * (settings.alpine.apkBuildKey; its public name is the file name + `.pub`, as abuild's),
 * or else a development key made once under cache/apk-signing/ with a warning that
 * nodes must not trust it for releases.
 */
export function resolveApkBuildKey(root: string, configured: string | undefined, warn: (line: string) => void): ApkBuildKey {
  const show = (p: string) => {
    const rel = relative(root, p);
    return rel.startsWith('..') || isAbsolute(rel) ? p : rel;
  };
  if (configured !== undefined) {
    const path = isAbsolute(configured) ? configured : resolve(root, configured);
    return {key: loadSigningKey(path), path: show(path), development: false};
  }
  const dir = join(root, DEV_APK_KEY_DIR);
  const existing = existsSync(dir)
    ? readdirSync(dir)
        .filter((n) => /^psy-dev-[0-9a-f]+\.rsa$/.test(n))
        .sort()
    : [];
  let path: string;
  if (existing.length) {
    path = join(dir, existing[0]!);
  } else {
    const key = generateSigningKey('psy-dev', Date.now() / 1000);
    mkdirSync(dir, {recursive: true});
    path = join(dir, key.name.replace(/\.pub$/, ''));
    // public half first, so a private key never exists without it
    writeFileSync(`${path}.pub`, key.publicKeyPem, {mode: 0o644});
    writeFileAtomicSync(path, key.privateKeyPem, 0o600);
  }
  warn(
    `warning: no APK build key configured, signing our packages with the development key ${show(path)}; it must not sign releases (set settings.alpine.apkBuildKey to an abuild private key)`,
  );
  return {key: loadSigningKey(path), path: show(path), development: true};
}
