import {readdirSync, readFileSync, statSync} from 'node:fs';
import {isAbsolute, join, resolve} from 'node:path';
import {defineRule} from '../src/engine/rule.js';
import {isPsyError, PsyError} from '../src/errors.js';
import {lockSettingsProblems, openRepositories} from '../src/apk/alpine-root.js';
import type {ApkPackage} from '../src/apk/apk-package.js';
import {installPackages} from '../src/apk/installer.js';
import {readLock} from '../src/apk/lockfile.js';
import {writeManifest} from '../src/apk/manifest.js';
import {keyDirs, validateAlpineSettings} from '../src/apk/settings.js';

/**
 * Install part of the locked package set into a root folder, rootless: the folder plus
 * the manifest of true owners and modes that the filesystem builders apply. The lock
 * (alpine/packages.lock.json, made by `psy lock`) is the input: packages come from the
 * download cache or the repositories, each checked against its locked identity.
 *
 * inputs: lock. params: settings (settings.alpine), part ('system': everything but the
 * kernel packages; 'kernel': only them), kernelPackages (names).
 * outputs: root (dir), manifest (file)
 */
export default defineRule({
  name: 'alpine-root',
  version: 2,
  module: import.meta.url,
  async run(ctx) {
    const settings = validateAlpineSettings(ctx.params['settings']);
    const lockPath = ctx.inputs['lock']![0]!;
    const lock = readLock(lockPath);
    const stale = lockSettingsProblems(settings, lock);
    if (stale.length) throw new PsyError('apk-lock-stale', `the lock does not match settings.alpine (${stale.join('; ')}): run psy lock`);
    const kernelNames = new Set(ctx.params['kernelPackages'] as string[]);
    const part = String(ctx.params['part']);
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
    const keys: Array<[string, Buffer]> = [];
    for (const d of keyDirs(settings)) {
      const dir = isAbsolute(d) ? d : resolve(ctx.root, d);
      for (const name of readdirSync(dir).sort()) if (statSync(join(dir, name)).isFile()) keys.push([name, readFileSync(join(dir, name))]);
    }
    const runtime = settings.runtimeRepositories ?? settings.repositories.filter((r) => /^(@\S+\s+)?https?:\/\//.test(r.trim()));
    const world = part === 'kernel' ? [...kernelNames] : settings.world.filter((w) => !kernelNames.has(w));
    const result = installPackages({
      root: ctx.outputs['root']!,
      packages,
      world,
      repositories: runtime.map((r) => r.replaceAll('{release}', settings.release)),
      keys,
      arch: settings.arch,
      accounts: settings.accounts,
      sourceDateEpoch: ctx.sourceDateEpoch,
    });
    writeManifest(ctx.outputs['manifest']!, result.manifest);
    ctx.log(`installed ${packages.length} locked packages`);
  },
});
