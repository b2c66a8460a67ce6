/**
 * The last part of scripts/quickstart.sh: build psyopsOS from Alpine's mirror (lock the
 * world first when there is no lock), then boot it headless to the boot marker. Where
 * the mirror cannot be reached it says so in one line with the URL and builds the
 * offline test image instead (scripts/offline-image.ts).
 *
 *   node --import ./scripts/register-ts.mjs scripts/quickstart.ts [--no-boot]
 */
import {spawnSync} from 'node:child_process';
import {existsSync} from 'node:fs';
import {isAbsolute, join} from 'node:path';
import {openRepositories} from '../src/apk/alpine-root.js';
import {DownloadError} from '../src/apk/repository.js';
import {DEFAULT_LOCKFILE, validateAlpineSettings} from '../src/apk/settings.js';
import {loadConfig} from '../src/engine/load-config.js';
import {repoRoot} from '../test/helpers/shared-data.js';
import {buildOfflineImage, runScript} from './offline-image.js';

const boot = !process.argv.includes('--no-boot');
const say = (line: string) => console.error(`quickstart: ${line}`);

function psy(args: string[]): number {
  console.log(`\n$ psy ${args.join(' ')}`);
  return spawnSync(process.execPath, [join(repoRoot, 'bin', 'psy.js'), ...args], {cwd: repoRoot, stdio: 'inherit'}).status ?? 1;
}

await runScript('quickstart', async () => {
  const loaded = await loadConfig({cwd: repoRoot});
  const settings = validateAlpineSettings(loaded.config.settings?.['alpine']);
  const lockRel = settings.lockfile ?? DEFAULT_LOCKFILE;
  const haveLock = existsSync(isAbsolute(lockRel) ? lockRel : join(repoRoot, lockRel));

  // One index of the first mirror tells whether it can be reached at all (and checks the
  // shipped keys); a local repository folder needs no network.
  const {client, specs} = openRepositories({settings, projectRoot: repoRoot});
  const remote = specs.find((s) => /^https?:\/\//.test(s.location));
  if (remote) {
    try {
      await client.index(remote);
    } catch (err) {
      if (!(err instanceof DownloadError)) throw err;
      say(`Alpine's mirror cannot be reached (${err.url}: ${err.why}); building the offline test image instead`);
      return buildOfflineImage({boot});
    }
  }
  for (const args of [...(haveLock ? [] : [['lock']]), ['build', 'diskimg']]) {
    const status = psy(args);
    if (status !== 0) return status;
  }
  if (!boot) return 0;
  return psy(['vm', '--marker', 'PSYOPSOS-BOOTED slot=psyopsOS-A', '--timeout', '900', '--log', 'serial.log']);
});
