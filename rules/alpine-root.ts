import {readdirSync, readFileSync, statSync} from 'node:fs';
import {isAbsolute, join, resolve} from 'node:path';
import {defineRule, param, type JsonValue} from '../src/engine/rule.js';
import {isPsyError, PsyError} from '../src/errors.js';
import {plural} from '../src/wording.js';
import {lockSettingsProblems, openRepositories} from '../src/apk/alpine-root.js';
import {readApk, type ApkPackage} from '../src/apk/apk-package.js';
import {readApkIndex} from '../src/apk/apkindex.js';
import {loadKeyring} from '../src/apk/keys.js';
import {installPackages} from '../src/apk/installer.js';
import {readLock} from '../src/apk/lockfile.js';
import {writeManifest} from '../src/apk/manifest.js';
import {keyDirs, validateAlpineSettings, type AlpineSettings} from '../src/apk/settings.js';
import {repositorySubdir} from './apk-repository.js';

/**
 * Install part of the locked package set into a root folder, rootless: the folder plus
 * the manifest of true owners and modes that the filesystem builders apply. The lock
 * (alpine/packages.lock.json, made by `psy lock`) is the input: packages come from the
 * download cache or the repositories, each checked against its locked identity.
 *
 * Our own packages (the lock's ownPackages) come from the built repository (inputs
 * ownRepo and ownKeys, the apkrepo target's outputs): its index is verified with the
 * build key, and each package must have exactly the locked version.
 *
 * inputs: lock, ownRepo + ownKeys (part 'system' with our packages; ownKeys alone when
 * only our repository is named in etc/apk/repositories). params: settings
 * (settings.alpine), part ('system': everything but the kernel packages, plus our own;
 * 'boot': the same without our own; 'kernel': only the kernel packages), kernelPackages.
 * outputs: root (dir), manifest (file)
 */
export default defineRule({
  name: 'alpine-root',
  version: 2,
  module: import.meta.url,
  inputs: {lock: 'file', ownRepo: 'file?', ownKeys: 'file?'},
  params: {settings: param<JsonValue>(), part: param<'system' | 'boot' | 'kernel'>(), kernelPackages: 'strings'},
  outputs: {root: 'dir', manifest: 'file'},
  async run(ctx) {
    const settings = validateAlpineSettings(ctx.params.settings);
    const lockPath = ctx.inputs.lock;
    const lock = readLock(lockPath);
    const stale = lockSettingsProblems(settings, lock);
    if (stale.length) throw new PsyError('apk-lock-stale', `the lock does not match settings.alpine (${stale.join('; ')}): run psy lock`);
    const kernelNames = new Set(ctx.params.kernelPackages);
    const part = ctx.params.part;
    const wanted = lock.packages.filter((p) => kernelNames.has(p.name) === (part === 'kernel'));
    for (const name of kernelNames) {
      if (part === 'kernel' && !lock.packages.some((p) => p.name === name)) {
        throw new PsyError('apk-lock-stale', `${name} is not in the lock; add it to settings.alpine.world and run psy lock`);
      }
    }
    const {client, specs} = openRepositories({settings, projectRoot: ctx.root, log: (l) => ctx.log(l)});
    const byLocation = new Map(specs.map((s) => [s.location, s]));
    const packages: ApkPackage[] = [];
    for (const p of wanted) {
      const spec = byLocation.get(p.repository);
      if (!spec) throw new PsyError('apk-lock-stale', `locked ${p.name} comes from ${p.repository}, which is not configured: run psy lock`);
      try {
        packages.push(await client.package(spec, p.name, p.version, p.checksum));
      } catch (err) {
        if (isPsyError(err) && err.code === 'apk-network') {
          throw new PsyError(
            'mirror-unreachable',
            `Alpine mirror cannot be reached (${err.message}); build offline from the package cache (${settings.cacheDir ?? 'cache/apk'}, filled by an earlier online build) or from a local repository folder in settings.alpine.repositories (see docs/psyopsos-image.md)`,
          );
        }
        throw err;
      }
    }
    const withOwn = part === 'system' && (lock.ownPackages?.length ?? 0) > 0;
    if (withOwn) packages.push(...ownPackages(settings, lock.ownPackages!, ctx.inputs.ownRepo, ctx.inputs.ownKeys));
    const keys: Array<[string, Buffer]> = [];
    const keyFolders = [...keyDirs(settings)];
    // our signing key: for our packages in the root and for our repository in etc/apk/repositories
    const ownKeys = part === 'system' ? ctx.inputs.ownKeys : undefined;
    if (withOwn && !ownKeys) throw new PsyError('apk-lock-stale', 'our packages are in the lock but the apkrepo keys are not an input of this install');
    if (ownKeys) keyFolders.push(ownKeys);
    for (const d of keyFolders) {
      const dir = isAbsolute(d) ? d : resolve(ctx.root, d);
      for (const name of readdirSync(dir).sort()) if (statSync(join(dir, name)).isFile()) keys.push([name, readFileSync(join(dir, name))]);
    }
    const runtime = settings.runtimeRepositories ?? settings.repositories.filter((r) => /^(@\S+\s+)?https?:\/\//.test(r.trim()));
    const world =
      part === 'kernel' ? [...kernelNames] : [...settings.world.filter((w) => !kernelNames.has(w)), ...(withOwn ? (settings.ownPackages ?? []) : [])];
    const result = installPackages({
      root: ctx.outputs.root,
      packages,
      world,
      repositories: runtime.map((r) => r.replaceAll('{release}', settings.release)),
      keys,
      arch: settings.arch,
      accounts: settings.accounts,
      sourceDateEpoch: ctx.sourceDateEpoch,
    });
    writeManifest(ctx.outputs.manifest, result.manifest);
    ctx.log(`installed ${plural(packages.length, 'locked package')}`);
  },
});

/** Our locked packages from the built repository, verified and checked against the lock's versions. */
function ownPackages(
  settings: AlpineSettings,
  locked: ReadonlyArray<{name: string; version: string}>,
  repo: string | undefined,
  keysDir: string | undefined,
): ApkPackage[] {
  if (!repo || !keysDir) {
    throw new PsyError(
      'apk-lock-stale',
      `the lock has our packages (${locked.map((p) => p.name).join(', ')}) but settings.alpine.ownPackages is empty: run psy lock`,
    );
  }
  const archDir = join(repo, repositorySubdir(settings.release), settings.arch);
  const keyring = loadKeyring(keysDir);
  const index = readApkIndex(readFileSync(join(archDir, 'APKINDEX.tar.gz')), join(archDir, 'APKINDEX.tar.gz'), {keyring});
  return locked.map((l) => {
    const rec = index.records.find((r) => r.name === l.name);
    if (!rec) throw new PsyError('apk-lock-stale', `${l.name} is locked but the package repository (apkrepo) does not build it: run psy lock`);
    if (rec.version !== l.version) {
      throw new PsyError('apk-lock-stale', `${l.name} is locked at ${l.version} but apkrepo built ${rec.version}: run psy lock`);
    }
    const file = join(archDir, `${rec.name}-${rec.version}.apk`);
    const pkg = readApk(readFileSync(file), file, {keyring});
    if (pkg.checksum !== rec.checksum) throw new PsyError('apk-corrupt', `${file} does not match its index entry`);
    return pkg;
  });
}
