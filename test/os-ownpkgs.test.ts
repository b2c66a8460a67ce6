import {execFileSync, spawnSync} from 'node:child_process';
import {readFileSync} from 'node:fs';
import {createHash} from 'node:crypto';
import {cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join, relative} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {readApkIndex} from '../src/apk/apkindex.js';
import {checkLock, installFromLock} from '../src/apk/alpine-root.js';
import {generateSigningKey, loadKeyring} from '../src/apk/keys.js';
import {readLock} from '../src/apk/lockfile.js';
import {validateAlpineSettings} from '../src/apk/settings.js';
import {build, type BuildResult} from '../src/engine/build.js';
import type {BuildEvent} from '../src/engine/events.js';
import {alpineSettingsFor, withDefaults, type AlpineSettings} from '../targets/settings.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {fixtureSettings, lockProject, writeConfig, writeProject} from './os-project.js';

const KEY = 'keys/psy-test-65f0a000.rsa';

async function hashTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, {withFileTypes: true})) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else
        out[relative(dir, p)] = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
    }
  };
  await walk(dir);
  return out;
}

/**
 * A fixture project with neuralupgrade in its root, from its real declaration: the
 * fixture's stand-ins (nodejs as Bun, Debian's e2fsprogs, mtools, sfdisk and blkid on
 * glibc-compat, named as such) provide what it depends on.
 */
async function ownProject(dir: string, fx: FixtureRepository, key: string, over: Partial<AlpineSettings> = {}): Promise<Partial<AlpineSettings>> {
  await writeProject(dir, fixtureSettings(dir, fx));
  await mkdir(join(dir, 'keys'), {recursive: true});
  await writeFile(join(dir, KEY), key);
  const settings = fixtureSettings(dir, fx, {ownPackages: ['neuralupgrade'], apkBuildKey: KEY, ...over});
  await writeConfig(dir, settings);
  await lockProject(dir, settings);
  return settings;
}

describe.skipIf(!haveAlpineTestData())('our own packages: signed repository, in the lock, in the root', () => {
  let fx: FixtureRepository;
  let base: string;
  let one: string;
  let key: string;
  let clean: BuildResult;
  beforeAll(async () => {
    fx = await buildFixtureRepository();
    base = await mkdtemp(join(tmpdir(), 'psy-os-ownpkgs-'));
    key = generateSigningKey('psy-test', 0x65f0a000, 2048).privateKeyPem;
    one = join(base, 'one');
    await ownProject(one, fx, key);
    const steps: string[] = [];
    const logger = {event: (e: BuildEvent) => void (e.type === 'finish' && steps.push(`${e.target} ${(e.durationMs / 1000).toFixed(1)}s`))};
    const t0 = performance.now();
    clean = await build({cwd: one, targets: ['diskimg'], jobs: 2, logger});
    if (!clean.ok) throw new Error(JSON.stringify(clean.failed));
    console.log(`clean build with neuralupgrade: ${((performance.now() - t0) / 1000).toFixed(1)} s (${steps.join(', ')})`);
  }, 900_000);
  afterAll(async () => {
    if (base) await rm(base, {recursive: true, force: true});
  });

  it('psy lock pins our package by name and version beside the Q1-pinned Alpine packages', () => {
    const lock = readLock(join(one, 'alpine/packages.lock.json'));
    expect(lock.ownWorld).toEqual(['neuralupgrade']);
    expect(lock.ownPackages).toEqual([{name: 'neuralupgrade', version: '2.0.0-r0'}]);
    expect(lock.packages.some((p) => p.name === 'neuralupgrade')).toBe(false);
    expect(lock.packages.find((p) => p.name === 'busybox')?.checksum).toMatch(/^Q1/);
  });

  it("the real declaration's dependencies come from the fixture's stand-ins, named as such", () => {
    const lock = readLock(join(one, 'alpine/packages.lock.json'));
    const names = lock.packages.map((p) => p.name);
    for (const n of [
      'nodejs-bun-stand-in',
      'e2fsprogs-debian-stand-in',
      'e2fsprogs-extra-debian-stand-in',
      'mtools-debian-stand-in',
      'sfdisk-debian-stand-in',
      'blkid-debian-stand-in',
      'glibc-compat-debian-stand-in',
    ]) {
      expect(names).toContain(n);
    }
  });

  it('apkrepo builds a signed index and packages that src/apk verifies', async () => {
    const repo = clean.outputs['apkrepo']!['repo']!;
    const keys = clean.outputs['apkrepo']!['keys']!;
    expect(await readdir(keys)).toEqual(['psy-test-65f0a000.rsa.pub']);
    const keyring = loadKeyring(keys);
    const archDir = join(repo, 'v3.20/psyopsOS/x86_64');
    const index = readApkIndex(await readFile(join(archDir, 'APKINDEX.tar.gz')), 'APKINDEX', {keyring});
    expect(index.signedBy).toBe('psy-test-65f0a000.rsa.pub');
    const rec = index.records.find((r) => r.name === 'neuralupgrade');
    expect(rec?.version).toBe('2.0.0-r0');
    const pkg = readApk(await readFile(join(archDir, 'neuralupgrade-2.0.0-r0.apk')), 'neuralupgrade', {keyring});
    expect(pkg.checksum).toBe(rec!.checksum);
    expect(pkg.dataEntries.some((e) => e.path === 'usr/lib/neuralupgrade/cli/neuralupgrade.js')).toBe(true);
    // a foreign key does not verify it
    const otherDir = join(base, 'other-keys');
    await mkdir(otherDir, {recursive: true});
    await writeFile(join(otherDir, 'psy-test-65f0a000.rsa.pub'), generateSigningKey('x', 1).publicKeyPem);
    expect(() => readApkIndex(readFileSync(join(archDir, 'APKINDEX.tar.gz')), 'APKINDEX', {keyring: loadKeyring(otherDir)})).toThrow();
  });

  it('without a configured build key, a development key under cache/ signs it, with a warning', async () => {
    const dev = join(base, 'dev');
    await ownProject(dev, fx, key, {apkBuildKey: undefined});
    const out: string[] = [];
    const logger = {event: (e: BuildEvent) => void (e.type === 'finish' && out.push(e.output))};
    const r = await build({cwd: dev, targets: ['apkrepo'], jobs: 2, logger});
    expect(r.ok).toBe(true);
    const devKeys = (await readdir(join(dev, 'cache/apk-signing'))).sort();
    expect(devKeys).toHaveLength(2);
    expect(devKeys[0]).toMatch(/^psy-dev-[0-9a-f]{8}\.rsa$/);
    expect(devKeys[1]).toBe(`${devKeys[0]}.pub`);
    expect(out.join('')).toContain(
      `warning: no APK build key configured, signing our packages with the development key cache/apk-signing/${devKeys[0]}; it must not sign releases`,
    );
    const keys = r.outputs['apkrepo']!['keys']!;
    expect(await readdir(keys)).toEqual([devKeys[1]]);
    const index = readApkIndex(await readFile(join(r.outputs['apkrepo']!['repo']!, 'v3.20/psyopsOS/x86_64/APKINDEX.tar.gz')), 'APKINDEX', {
      keyring: loadKeyring(keys),
    });
    expect(index.signedBy).toBe(devKeys[1]);

    // the compiled modules are inputs: the same bytes in a real folder run nothing, an
    // edit of one neuralupgrade module rebuilds the package with it
    await rm(join(dev, 'dist'));
    await cp(join(repoRoot, 'dist'), join(dev, 'dist'), {recursive: true});
    const same = await build({cwd: dev, targets: ['apkrepo'], jobs: 2});
    expect(same.ran).toEqual([]);
    const mod = join(dev, 'dist/upgrade/apply-os.js');
    await writeFile(mod, '// changed\n' + (await readFile(mod, 'utf8')));
    const changed = await build({cwd: dev, targets: ['apkrepo'], jobs: 2});
    expect(changed.ran).toEqual(['apkrepo']);
    const apk = readApk(await readFile(join(changed.outputs['apkrepo']!['repo']!, 'v3.20/psyopsOS/x86_64/neuralupgrade-2.0.0-r0.apk')), 'neuralupgrade', {
      keyring: loadKeyring(keys),
    });
    expect(apk.dataEntries.find((e) => e.path === 'usr/lib/neuralupgrade/upgrade/apply-os.js')?.data?.toString('utf8')).toContain('// changed');
  }, 300_000);

  it('installFromLock takes our built packages beside the locked ones, and refuses a lock whose own packages are missing', async () => {
    const settings = validateAlpineSettings(alpineSettingsFor(withDefaults(fixtureSettings(one, fx, {ownPackages: ['neuralupgrade']}))));
    const lock = readLock(join(one, 'alpine/packages.lock.json'));
    const system = {...lock, packages: lock.packages.filter((p) => !['linux-lts', 'mkinitfs'].includes(p.name))};
    const keyring = loadKeyring(clean.outputs['apkrepo']!['keys']!);
    const built = readApk(await readFile(join(clean.outputs['apkrepo']!['repo']!, 'v3.20/psyopsOS/x86_64/neuralupgrade-2.0.0-r0.apk')), 'neuralupgrade', {
      keyring,
    });
    const world = settings.world.filter((w) => !['linux-lts', 'mkinitfs'].includes(w));
    const ctx = {settings: {...settings, world}, projectRoot: one};
    const fresh = {...system, world};
    await expect(installFromLock({...ctx, lock: fresh, targetRoot: join(base, 'lib-root-0'), sourceDateEpoch: 1})).rejects.toThrow(
      'neuralupgrade is locked as one of our packages but was not given to the install (build it first)',
    );
    await installFromLock({...ctx, lock: fresh, ownPackages: [built], targetRoot: join(base, 'lib-root'), sourceDateEpoch: 1});
    expect(await readFile(join(base, 'lib-root/lib/apk/db/installed'), 'utf8')).toMatch(/^P:neuralupgrade$/m);
    expect((await readFile(join(base, 'lib-root/etc/apk/world'), 'utf8')).split('\n')).toContain('neuralupgrade');
  }, 120_000);

  it('psy lock (the command) writes our package into the lock and reports it', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin/psy.js'), 'lock', '--check'], {cwd: one, encoding: 'utf8'});
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^alpine\/packages\.lock\.json: up to date \(\d+ packages \+ 1 of ours\)\n$/);
    expect(r.status).toBe(0);
  });

  it('psy publish ships the package repository into the deaddrop replica', async () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin/psy.js'), 'publish', '--no-build'], {cwd: one, encoding: 'utf8'});
    expect(r.status, r.stderr).toBe(0);
    const apkDir = join(one, 'cache/deaddrop/apk/v3.20/psyopsOS/x86_64');
    expect((await readdir(apkDir)).sort()).toEqual(['APKINDEX.tar.gz', 'neuralupgrade-2.0.0-r0.apk']);
    const built = join(clean.outputs['apkrepo']!['repo']!, 'v3.20/psyopsOS/x86_64/neuralupgrade-2.0.0-r0.apk');
    expect(await readFile(join(apkDir, 'neuralupgrade-2.0.0-r0.apk'))).toEqual(await readFile(built));
    expect((await readdir(join(one, 'cache/deaddrop/os'))).some((n) => n.startsWith('psyopsOS.x86_64.'))).toBe(true);
  }, 300_000);

  it('a rebuild in another folder gives the same repository bytes', async () => {
    const two = join(base, 'two');
    await ownProject(two, fx, key);
    const again = await build({cwd: two, targets: ['apkrepo'], jobs: 2});
    expect(again.ok).toBe(true);
    const a = await hashTree(clean.outputs['apkrepo']!['repo']!);
    const b = await hashTree(again.outputs['apkrepo']!['repo']!);
    expect(Object.keys(a).sort()).toEqual(['v3.20/psyopsOS/x86_64/APKINDEX.tar.gz', 'v3.20/psyopsOS/x86_64/neuralupgrade-2.0.0-r0.apk']);
    expect(b).toEqual(a);
  }, 300_000);

  it('the root and the squashfs hold neuralupgrade, its launcher and its installed-database entry', async () => {
    const root = clean.outputs['rootfs']!['root']!;
    const launcher = await readFile(join(root, 'usr/sbin/neuralupgrade'), 'utf8');
    expect(launcher).toMatch(/^#!\/usr\/bin\/env node/);
    await readFile(join(root, 'usr/lib/neuralupgrade/cli/neuralupgrade.js'));
    const installed = await readFile(join(root, 'lib/apk/db/installed'), 'utf8');
    expect(installed).toMatch(/^P:neuralupgrade\nV:2\.0\.0-r0$/m);
    expect((await readFile(join(root, 'etc/apk/world'), 'utf8')).split('\n')).toContain('neuralupgrade');
    expect(await readdir(join(root, 'etc/apk/keys'))).toContain('psy-test-65f0a000.rsa.pub');
    const manifest = await readFile(clean.outputs['rootfs']!['manifest']!, 'utf8');
    expect(manifest).toContain('usr/sbin/neuralupgrade');
    // the init and the initramfs come from the root without our packages
    await expect(readFile(join(clean.outputs['boot-root']!['root']!, 'usr/sbin/neuralupgrade'))).rejects.toThrow();
    const listing = execFileSync('unsquashfs', ['-lls', '-n', clean.outputs['squashfs']!['squashfs']!], {encoding: 'utf8', maxBuffer: 64 << 20});
    expect(listing).toMatch(/^-rwxr-xr-x root\/root .* squashfs-root\/usr\/sbin\/neuralupgrade$/m);
    expect(listing).toMatch(/squashfs-root\/usr\/lib\/neuralupgrade\/cli\/neuralupgrade\.js$/m);
  });

  it('editing a file of alpine/packages/neuralupgrade re-runs exactly the repository, rootfs, squashfs, ostar and diskimg', async () => {
    const noop = await build({cwd: one, targets: ['diskimg'], jobs: 2});
    expect(noop.ran).toEqual([]);
    const launcherPath = join(one, 'alpine/packages/neuralupgrade/files/usr/sbin/neuralupgrade');
    const before = await readFile(launcherPath, 'utf8');
    await writeFile(launcherPath, before + '// edited\n');
    try {
      const edit = await build({cwd: one, targets: ['diskimg'], jobs: 2});
      expect(edit.ok).toBe(true);
      expect([...edit.ran].sort()).toEqual(['apkrepo', 'diskimg', 'ostar', 'rootfs', 'squashfs']);
      expect(await readFile(join(edit.outputs['rootfs']!['root']!, 'usr/sbin/neuralupgrade'), 'utf8')).toContain('// edited');
    } finally {
      await writeFile(launcherPath, before);
    }
  }, 600_000);

  it('a built version that differs from the lock is a one-line error naming both', async () => {
    const declPath = join(one, 'alpine/packages/neuralupgrade/apk.json');
    const before = await readFile(declPath, 'utf8');
    await writeFile(declPath, before.replace('"2.0.0-r0"', '"2.0.1-r0"'));
    try {
      const r = await build({cwd: one, targets: ['diskimg'], jobs: 2});
      expect(r.ok).toBe(false);
      const f = r.failed[0]!;
      expect(`${f.target}: ${f.message}`).toBe('rootfs: neuralupgrade is locked at 2.0.0-r0 but apkrepo built 2.0.1-r0: run psy lock');
      // psy lock --check sees the same drift without building
      const settings = validateAlpineSettings(alpineSettingsFor(withDefaults(fixtureSettings(one, fx, {ownPackages: ['neuralupgrade']}))));
      const problems = await checkLock({settings, projectRoot: one}, readLock(join(one, 'alpine/packages.lock.json')));
      expect(problems).toContain('neuralupgrade: locked 2.0.0-r0 but the declaration says 2.0.1-r0');
    } finally {
      await writeFile(declPath, before);
    }
  }, 300_000);
});
