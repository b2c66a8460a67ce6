/**
 * A throwaway psyopsOS project for the os/e2e tests: build.config.ts built from the
 * offline fixture repository (psy does not know it is a fixture), the repository's
 * alpine/ inputs copied in (so a test may edit the patch), and a test overlay whose
 * inittab runs the local.d scripts (slot marker, individuation) and powers off.
 */
import {cp, mkdir, readlink, rm, symlink, writeFile} from 'node:fs/promises';
import {join, relative} from 'node:path';
import {lockWorld} from '../src/apk/alpine-root.js';
import {writeLock} from '../src/apk/lockfile.js';
import {validateAlpineSettings} from '../src/apk/settings.js';
import {alpineSettingsFor, withDefaults, type AlpineSettings} from '../targets/settings.js';
import type {FixtureRepository} from './fixtures/build-fixture-repository.js';
import {repoRoot} from './helpers/shared-data.js';

export const markerPattern = /PSYOPSOS-BOOTED slot=(\S+) root=(\S+) modloop=(\S+)/;

/** Settings for a project in `dir` (repository paths relative to it, as a user would write them). */
export function fixtureSettings(dir: string, fx: FixtureRepository, over: Partial<AlpineSettings> = {}): Partial<AlpineSettings> {
  return {
    release: '3.20',
    arch: fx.arch,
    repositories: [relative(dir, fx.repoDir)],
    keysDir: fx.keysDir,
    cacheDir: 'cache/apk',
    world: [...fx.minirootfsWorld],
    kernelFlavor: 'lts',
    mkinitfsFeatures: ['base', 'virtio', 'ext4'],
    compression: {squashfs: 'zstd', modloop: 'zstd', modloopLevel: 3, initramfs: 'gzip'},
    partitions: {espMiB: 40, secretMiB: 8, slotMiB: 320},
    overlayDirs: ['alpine/overlay', 'test-overlay'],
    grub: {timeoutSec: 1},
    imageSeed: 'psyopsOS-test',
    // neuralupgrade (with the fixture's stand-ins for nodejs and its tools, about 110 MB)
    // only where a test is about it: test/os-ownpkgs.test.ts, test/os-node-runtime.test.ts
    ownPackages: [],
    // The fixture world has no openrc (no /etc/init.d at all): its stand-in is the test
    // overlay's inittab, which runs the same boot scripts OpenRC's local would.
    runlevels: {},
    ...over,
  };
}

/** More of the project than settings.alpine: the operators who may read `psy node` secrets;
 * `lock: false` leaves the lock to `psy lock`. */
export interface ProjectExtras {
  readonly nodeRecipients?: readonly string[];
  /** More of settings.nodes (hosts, ssh), beside the recipients. */
  readonly nodes?: Readonly<Record<string, unknown>>;
  readonly lock?: boolean;
}

export async function writeProject(dir: string, settings: Partial<AlpineSettings>, extras: ProjectExtras = {}): Promise<void> {
  await mkdir(join(dir, 'test-overlay/etc'), {recursive: true});
  // a symlink already copied by an earlier write is kept (cp refuses to copy one onto itself)
  const sameLink = async (src: string, dest: string) => {
    const [a, b] = await Promise.all([readlink(src).catch(() => undefined), readlink(dest).catch(() => undefined)]);
    return a !== undefined && a === b;
  };
  await cp(join(repoRoot, 'alpine'), join(dir, 'alpine'), {recursive: true, filter: async (src, dest) => !(await sameLink(src, dest))});
  // the compiled modules neuralupgrade's package ships, as in the repository itself
  // (a project written again, as the offline image's is on every run, keeps its link)
  const dist = join(dir, 'dist');
  const existing = await readlink(dist).catch(() => undefined);
  if (existing !== join(repoRoot, 'dist')) {
    await rm(dist, {recursive: true, force: true});
    await symlink(join(repoRoot, 'dist'), dist);
  }
  // No OpenRC in the fixture world: busybox init does what OpenRC's local service would
  // (the /etc/local.d/*.start scripts in name order: the slot marker, then the node's
  // individuation), then powers off.
  await writeFile(
    join(dir, 'test-overlay/etc/inittab'),
    '::sysinit:/bin/sh -c \'for s in /etc/local.d/*.start; do [ -x "$s" ] && "$s"; done; sync; poweroff -f\'\n',
  );
  await writeConfig(dir, settings, extras);
  if (extras.lock !== false) await lockProject(dir, settings);
}

/** What `psy lock` does: resolve settings.alpine's world into alpine/packages.lock.json. */
export async function lockProject(dir: string, settings: Partial<AlpineSettings>): Promise<void> {
  const full = alpineSettingsFor(withDefaults(settings));
  const lock = await lockWorld({settings: validateAlpineSettings(full), projectRoot: dir});
  writeLock(join(dir, full.lockfile), lock);
}

export async function writeConfig(dir: string, settings: Partial<AlpineSettings>, extras: ProjectExtras = {}): Promise<void> {
  const targets = relative(dir, join(repoRoot, 'targets/psyopsos.js'));
  // with node recipients the project has nodes/, whose targets need the project root
  const more =
    extras.nodeRecipients === undefined
      ? ''
      : `, {settings: {nodes: ${JSON.stringify({...extras.nodes, recipients: extras.nodeRecipients})}}}, {root: import.meta.dirname}`;
  await writeFile(
    join(dir, 'build.config.ts'),
    `import {psyopsosConfig} from '${targets}';\nexport default psyopsosConfig(${JSON.stringify(settings, null, 2)}${more});\n`,
  );
}
