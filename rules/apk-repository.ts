import {cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {isAbsolute, join, resolve} from 'node:path';
import {defineRule, param} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';
import {resolveApkBuildKey} from '../src/apk/build-key.js';
import {buildRepository} from '../src/apk/package-builder.js';
import {stageNeuralupgradePackage} from '../src/upgrade/package-stage.js';

/** Where the repository sits inside the output folder (and so in the deaddrop's apk/). */
export function repositorySubdir(release: string): string {
  return `v${release.replace(/^v/, '')}/psyopsOS`;
}

/**
 * Our own packages (every alpine/packages/NAME/) built into a signed APK repository:
 * `<repo>/v<release>/psyopsOS/<arch>/` with the packages and a signed APKINDEX.tar.gz,
 * and the public key in `keys/`. neuralupgrade is staged first with the compiled
 * modules from dist/ (its `dist` input), so a change to its code rebuilds it. All mtimes
 * are SOURCE_DATE_EPOCH and RSA signatures are deterministic: same inputs, same bytes.
 *
 * inputs: packages (the declaration files), dist (compiled modules, when neuralupgrade is
 * declared), key (the configured build key, when there is one).
 * params: packagesDir, distDir, arch, release, key (path or null), npmPackages (the
 * name@version list neuralupgrade ships: only its key, so a new version rebuilds).
 * outputs: repo (dir), keys (dir holding the public key).
 */
export default defineRule({
  name: 'apk-repository',
  version: 1,
  module: import.meta.url,
  inputs: {packages: 'files', dist: 'files?', key: 'file?'},
  params: {packagesDir: 'string', distDir: 'string', arch: 'string', release: 'string', key: param<string | null>(), npmPackages: 'strings?'},
  outputs: {repo: 'dir', keys: 'dir'},
  async run(ctx) {
    const abs = (p: string) => (isAbsolute(p) ? p : resolve(ctx.root, p));
    const packagesDir = abs(ctx.params.packagesDir);
    const arch = ctx.params.arch;
    const release = ctx.params.release;
    const keyParam = ctx.params.key;
    const {key, path} = resolveApkBuildKey(ctx.root, keyParam ?? undefined, (l) => ctx.log(l));
    const staged = join(ctx.tmpDir, 'packages');
    mkdirSync(staged, {recursive: true});
    for (const name of readdirSync(packagesDir).sort()) {
      const src = join(packagesDir, name);
      if (!statSync(src).isDirectory()) continue;
      if (name === 'neuralupgrade') {
        const dist = abs(ctx.params.distDir);
        if (!existsSync(join(dist, 'cli', 'neuralupgrade.js'))) {
          throw new PsyError(
            'missing-input',
            `${join(dist, 'cli', 'neuralupgrade.js')} does not exist: run npm run build before building neuralupgrade's package`,
          );
        }
        stageNeuralupgradePackage(src, dist, staged);
      } else {
        cpSync(src, join(staged, name), {recursive: true});
      }
    }
    const repoDir = join(ctx.outputs.repo, repositorySubdir(release));
    const {packages} = buildRepository({
      packagesDir: staged,
      repoDir,
      arch,
      key,
      sourceDateEpoch: ctx.sourceDateEpoch,
      description: 'psyopsOS packages',
    });
    rmSync(staged, {recursive: true, force: true});
    mkdirSync(ctx.outputs.keys, {recursive: true});
    writeFileSync(join(ctx.outputs.keys, key.name), key.publicKeyPem);
    ctx.log(`built ${packages.map((p) => `${p.meta.name}-${p.meta.version}`).join(', ')} signed with ${path}`);
  },
});
