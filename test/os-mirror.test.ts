import {cp, mkdtemp, rm, symlink, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join, relative} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {lockWorld} from '../src/apk/alpine-root.js';
import {writeLock} from '../src/apk/lockfile.js';
import {validateAlpineSettings} from '../src/apk/settings.js';
import {build} from '../src/engine/build.js';
import {alpineSettingsFor, withDefaults, type AlpineSettings} from '../targets/settings.js';
import {alpineTestData, haveAlpineTestData, repoRoot} from './helpers/shared-data.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'psy-mirror-'));
});
afterEach(async () => {
  await rm(dir, {recursive: true, force: true});
});

// The main job against Alpine's real mirror, on a machine that cannot reach it.
describe.skipIf(!haveAlpineTestData())("building from Alpine's mirror when it cannot be reached", () => {
  const settings: Partial<AlpineSettings> = {keysDir: join(alpineTestData, 'keys'), cacheDir: 'cache/apk'};

  it('psy lock names the mirror URL and the offline way', async () => {
    const full = alpineSettingsFor(withDefaults(settings));
    const err = (await lockWorld({settings: validateAlpineSettings(full), projectRoot: dir}).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'apk-network'});
    expect(err.message).toContain('https://dl-cdn.alpinelinux.org/alpine/v3.21/main/x86_64/APKINDEX.tar.gz');
    expect(err.message).toMatch(/offline/);
  }, 120_000);

  it('psy build diskimg with a lock but an empty package cache says the mirror cannot be reached and how to build offline', async () => {
    const full = alpineSettingsFor(withDefaults(settings));
    await cp(join(repoRoot, 'alpine'), join(dir, 'alpine'), {recursive: true});
    // neuralupgrade (settings.alpine.ownPackages by default) is packaged from the compiled modules
    await symlink(join(repoRoot, 'dist'), join(dir, 'dist'));
    const main = full.repositories[0]!;
    writeLock(join(dir, full.lockfile), {
      lockVersion: 1,
      release: full.release,
      arch: full.arch,
      repositories: [...full.repositories],
      world: [...full.world],
      packages: [{name: 'musl', version: '1.2.5-r8', repository: main, checksum: 'Q1' + 'A'.repeat(27) + '='}],
      ownWorld: ['neuralupgrade'],
      ownPackages: [{name: 'neuralupgrade', version: '2.0.0-r0'}],
    });
    const targets = relative(dir, join(repoRoot, 'targets/psyopsos.js'));
    await writeFile(join(dir, 'build.config.ts'), `import {psyopsosConfig} from '${targets}';\nexport default psyopsosConfig(${JSON.stringify(settings)});\n`);
    const r = await build({cwd: dir, targets: ['rootfs'], jobs: 1});
    expect(r.ok).toBe(false);
    expect(r.failed[0]!.target).toBe('rootfs');
    const msg = r.failed[0]!.message;
    expect(msg).not.toContain('\n');
    expect(msg).toMatch(
      /^Alpine mirror cannot be reached \(cannot download https:\/\/dl-cdn\.alpinelinux\.org\/alpine\/v3\.21\/main\/x86_64\/musl-1\.2\.5-r8\.apk/,
    );
    expect(msg).toMatch(/build offline from the package cache \(cache\/apk.*or from a local repository folder/);
  }, 120_000);
});
