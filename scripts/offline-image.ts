/**
 * Builds and boots the offline psyopsOS image: for machines that cannot reach Alpine's
 * mirror. It makes the local APK repository the tests use (the official minirootfs
 * re-packed into signed packages, a linux-lts-shaped kernel from Debian's kernel package,
 * mkinitfs with Alpine's real init), writes a psyopsOS project that names it as its
 * repository in cache/offline-image/, then runs `psy lock`, `psy build diskimg` and a
 * headless `psy vm` boot that waits for the booted system's slot marker.
 *
 *   node --import ./scripts/register-ts.mjs scripts/offline-image.ts [--no-boot]
 */
import {spawnSync} from 'node:child_process';
import {mkdir} from 'node:fs/promises';
import {join} from 'node:path';
import {buildFixtureRepository} from '../test/fixtures/build-fixture-repository.js';
import {repoRoot} from '../test/helpers/shared-data.js';
import {fixtureSettings, writeProject} from '../test/os-project.js';

const boot = !process.argv.includes('--no-boot');
const dir = join(repoRoot, 'cache', 'offline-image');

function psy(args: string[]): void {
  console.log(`\n$ psy ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'psy.js'), ...args], {cwd: dir, stdio: 'inherit'});
  if (r.status !== 0) process.exit(r.status ?? 1);
}

console.log('building the local APK repository (first run: about a minute; reused afterwards)');
const fx = await buildFixtureRepository();
await mkdir(dir, {recursive: true});
await writeProject(dir, fixtureSettings(dir, fx));
console.log(`project: ${dir}`);
psy(['lock']);
psy(['build', 'diskimg']);
if (boot) {
  psy(['vm', '--accel', 'tcg', '--marker', 'PSYOPSOS-BOOTED slot=psyopsOS-A', '--timeout', '600', '--log', 'serial.log']);
}
