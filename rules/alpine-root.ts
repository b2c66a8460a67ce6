import {readFileSync, readdirSync, statSync} from 'node:fs';
import {isAbsolute, join, resolve} from 'node:path';
import {defineRule} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';
import {installPackages} from '../src/apk/installer.js';
import {loadKeyring} from '../src/apk/keys.js';
import {writeManifest} from '../src/apk/manifest.js';
import {fetchWorld} from './alpine-repositories.js';

/**
 * Install a package world into a root folder, rootless: the folder plus the manifest of
 * true owners and modes that the filesystem builders apply.
 *
 * params: world (string[]), repositories (string[]), arch, cacheDir, keysDir,
 *         nodeRepositories (string[]: etc/apk/repositories of the installed system)
 * outputs: root (dir), manifest (file)
 */
export default defineRule({
  name: 'alpine-root',
  version: 1,
  module: import.meta.url,
  async run(ctx) {
    const p = ctx.params as {
      world: string[];
      repositories: string[];
      arch: string;
      cacheDir: string;
      keysDir: string;
      nodeRepositories: string[];
    };
    const keysDir = isAbsolute(p.keysDir) ? p.keysDir : resolve(ctx.root, p.keysDir);
    let keyring: ReturnType<typeof loadKeyring> | undefined;
    const keys = () => (keyring ??= loadKeyring(keysDir));
    const {packages} = await fetchWorld(ctx.root, {repositories: p.repositories, arch: p.arch, cacheDir: p.cacheDir}, p.world, keys, ctx.signal);
    const keyFiles = readdirSync(keysDir)
      .sort()
      .filter((n) => statSync(join(keysDir, n)).isFile())
      .map((n) => [n, readFileSync(join(keysDir, n))] as const);
    const result = installPackages({
      root: ctx.outputs['root']!,
      packages,
      world: p.world,
      repositories: p.nodeRepositories,
      keys: keyFiles,
      arch: p.arch,
      sourceDateEpoch: ctx.sourceDateEpoch,
    });
    if (result.installed.length === 0) throw new PsyError('empty-world', `${ctx.target}: the world installs no packages`);
    writeManifest(ctx.outputs['manifest']!, result.manifest);
    ctx.log(`${ctx.target}: installed ${packages.length} packages, ${result.busyboxLinks} busybox links`);
  },
});
