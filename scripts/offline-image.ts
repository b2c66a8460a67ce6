/**
 * Builds and boots the offline psyopsOS image: for machines that cannot reach Alpine's
 * mirror. It makes the local APK repository the tests use (the official minirootfs
 * re-packed into signed packages, a linux-lts-shaped kernel from Debian's kernel package,
 * mkinitfs with Alpine's real init), writes a psyopsOS project that names it as its
 * repository in cache/offline-image/, then runs `psy lock`, `psy build diskimg` and a
 * headless `psy vm` boot that waits for the booted system's slot marker.
 *
 * Alpine's data comes from ../shared/testdata/alpine when it is there, else from Alpine's
 * servers, checked against pinned digests and kept in cache/downloads/.
 *
 *   node --import ./scripts/register-ts.mjs scripts/offline-image.ts [--no-boot]
 */
import {spawnSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs';
import {mkdir} from 'node:fs/promises';
import {join, relative} from 'node:path';
import {fileURLToPath} from 'node:url';
import {gunzipSync} from 'node:zlib';
import {readTar} from '../src/tar/index.js';
import {download, DownloadError} from '../src/apk/repository.js';
import {isPsyError, PsyError} from '../src/errors.js';
import {buildFixtureRepository, MINIROOTFS, MKINITFS_DIR} from '../test/fixtures/build-fixture-repository.js';
import {repoRoot} from '../test/helpers/shared-data.js';
import {fixtureSettings, writeProject} from '../test/os-project.js';

export const offlineProjectDir = join(repoRoot, 'cache', 'offline-image');
const downloadsDir = join(repoRoot, 'cache', 'downloads');

/** The official minirootfs, as Alpine publishes it (sha512 of the published file). */
export const minirootfsRelease = {
  file: 'alpine-minirootfs-3.20.3-x86_64.tar.gz',
  url: 'https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/x86_64/alpine-minirootfs-3.20.3-x86_64.tar.gz',
  sha512: '9d5405f61f8a6ebc02461ba75346fbf1a63a4eab8510a0158dd321cee0c4dafe28c2a3d2cb7c3d75e2a8130dae0c3c92382f5b6adeea309eafc97621c5bf6400',
};

/**
 * mkinitfs 3.13.0's initramfs-init (initramfs-init.in with @VERSION@ replaced, as its
 * Makefile does) and features.d, from the release tag's source archive. Archives made on
 * the fly are not byte-stable, so the files are pinned, not the archive: the init's
 * sha256 and the sha256 of the `<sha256>  <name>` lines of features.d, sorted by name.
 */
const mkinitfsRelease = {
  version: '3.13.0',
  url: 'https://gitlab.alpinelinux.org/alpine/mkinitfs/-/archive/3.13.0/mkinitfs-3.13.0.tar.gz',
  initSha256: '4ea2c4354e9334b54f6ea979188534d98ee2d2d7a26205a9853f31a6e88f4c0c',
  featuresSha256: 'd4bc38c01a7f698d576d592d3cd214eb737cc2cf2b3b266c3e3257b70a3ae20e',
};

function sha(algorithm: 'sha256' | 'sha512', bytes: Buffer | string): string {
  return createHash(algorithm).update(bytes).digest('hex');
}

export function featuresDigest(files: ReadonlyMap<string, Buffer>): string {
  const names = [...files.keys()].sort();
  return sha('sha256', names.map((n) => `${sha('sha256', files.get(n)!)}  ${n}\n`).join(''));
}

function writeAtomic(path: string, bytes: Buffer): void {
  mkdirSync(join(path, '..'), {recursive: true});
  writeFileSync(`${path}.part`, bytes);
  renameSync(`${path}.part`, path);
}

const where = (p: string) => relative(process.cwd(), p) || '.';

/** The minirootfs tarball: ../shared's copy, an earlier download, or a download now. */
async function minirootfs(): Promise<string> {
  if (existsSync(MINIROOTFS)) return MINIROOTFS;
  const cached = join(downloadsDir, minirootfsRelease.file);
  if (existsSync(cached)) {
    const got = sha('sha512', readFileSync(cached));
    if (got === minirootfsRelease.sha512) return cached;
    throw new PsyError(
      'offline-source',
      `${where(cached)}: sha512 ${got.slice(0, 16)}… is not the published ${minirootfsRelease.sha512.slice(0, 16)}… of ${minirootfsRelease.file}; remove it or put the official file there`,
    );
  }
  let bytes: Buffer;
  try {
    bytes = await download(minirootfsRelease.url);
  } catch (err) {
    throw missing(
      `Alpine's minirootfs: ${where(MINIROOTFS)} is not there and ${minirootfsRelease.url} cannot be downloaded (${reason(err)})`,
      `that file at ${where(cached)}`,
    );
  }
  const got = sha('sha512', bytes);
  if (got !== minirootfsRelease.sha512) {
    throw new PsyError(
      'offline-source',
      `${minirootfsRelease.url}: sha512 ${got.slice(0, 16)}… is not the published ${minirootfsRelease.sha512.slice(0, 16)}…; refusing it`,
    );
  }
  writeAtomic(cached, bytes);
  return cached;
}

/**
 * initramfs-init and features.d out of mkinitfs's source archive (below its top folder),
 * checked against the pinned digests.
 */
export function mkinitfsFromArchive(bytes: Buffer, source: string): {init: Buffer; features: Map<string, Buffer>} {
  let init: Buffer | undefined;
  const features = new Map<string, Buffer>();
  for (const e of readTar(gunzipSync(bytes), source)) {
    const rel = e.path.split('/').slice(1).join('/');
    if (e.type !== 'file') continue;
    if (rel === 'initramfs-init.in') init = Buffer.from(e.data.toString('utf8').replaceAll('@VERSION@', mkinitfsRelease.version));
    else if (/^features\.d\/[^/]+$/.test(rel)) features.set(rel.slice('features.d/'.length), e.data);
  }
  if (!init || sha('sha256', init) !== mkinitfsRelease.initSha256 || featuresDigest(features) !== mkinitfsRelease.featuresSha256) {
    throw new PsyError('offline-source', `${source}: initramfs-init or features.d is not mkinitfs ${mkinitfsRelease.version}'s; refusing it`);
  }
  return {init, features};
}

/** mkinitfs 3.13.0's init and features.d: ../shared's copy, an earlier download, or a download now. */
async function mkinitfs(): Promise<string> {
  if (existsSync(join(MKINITFS_DIR, 'initramfs-init'))) return MKINITFS_DIR;
  const dir = join(downloadsDir, `mkinitfs-${mkinitfsRelease.version}`);
  if (existsSync(join(dir, 'initramfs-init'))) return dir;
  let bytes: Buffer;
  try {
    bytes = await download(mkinitfsRelease.url);
  } catch (err) {
    throw missing(
      `Alpine's mkinitfs ${mkinitfsRelease.version}: ${where(MKINITFS_DIR)} is not there and ${mkinitfsRelease.url} cannot be downloaded (${reason(err)})`,
      `its initramfs-init and features.d/ into ${where(dir)}/`,
    );
  }
  const {init, features} = mkinitfsFromArchive(bytes, mkinitfsRelease.url);
  const tmp = `${dir}.part`;
  rmSync(tmp, {recursive: true, force: true});
  mkdirSync(join(tmp, 'features.d'), {recursive: true});
  writeFileSync(join(tmp, 'initramfs-init'), init, {mode: 0o755});
  for (const [name, data] of features) writeFileSync(join(tmp, 'features.d', name), data);
  renameSync(tmp, dir);
  return dir;
}

function reason(err: unknown): string {
  return err instanceof DownloadError ? err.why : (err as Error).message;
}

function missing(what: string, orPut: string): PsyError {
  return new PsyError('offline-source', `the offline image needs ${what}; put ../shared beside this clone, or ${orPut}`);
}

function psy(args: string[]): number {
  console.log(`\n$ psy ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'psy.js'), ...args], {cwd: offlineProjectDir, stdio: 'inherit'});
  return r.status ?? 1;
}

/** Builds the offline image (and boots it unless `boot` is false); returns the exit status. */
export async function buildOfflineImage(opts: {boot: boolean}): Promise<number> {
  const sources = {minirootfs: await minirootfs(), mkinitfsDir: await mkinitfs()};
  console.log('the local APK repository (first run: about a minute; reused afterwards)');
  // PSY_FIXTURE_CACHE: a fixture cache to share with another checkout (tests of this script)
  const fx = await buildFixtureRepository({...sources, cacheDir: process.env['PSY_FIXTURE_CACHE'] || undefined});
  await mkdir(offlineProjectDir, {recursive: true});
  await writeProject(offlineProjectDir, fixtureSettings(offlineProjectDir, fx), {lock: false});
  console.log(`project: ${where(offlineProjectDir)}`);
  for (const args of [['lock'], ['build', 'diskimg']]) {
    const status = psy(args);
    if (status !== 0) return status;
  }
  if (!opts.boot) return 0;
  return psy(['vm', '--accel', 'tcg', '--marker', 'PSYOPSOS-BOOTED slot=psyopsOS-A', '--timeout', '600', '--log', 'serial.log']);
}

/** Runs `main` and turns an expected failure into one line, anything else into one line too. */
export async function runScript(name: string, main: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (err) {
    console.error(`${name}: ${isPsyError(err) ? err.message : `internal error: ${(err as Error).message}`}`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await runScript('offline-image', () => buildOfflineImage({boot: !process.argv.includes('--no-boot')}));
}
