import {existsSync, mkdirSync, readFileSync} from 'node:fs';
import {dirname, isAbsolute, join} from 'node:path';
import {checkLock, lockWorld} from '../../apk/alpine-root.js';
import {formatLock, lockChanges, lockDowngrades, readLock, writeLock, type AlpineLock} from '../../apk/lockfile.js';
import {DEFAULT_LOCKFILE, validateAlpineSettings} from '../../apk/settings.js';
import {loadConfig} from '../../engine/load-config.js';
import {PsyError} from '../../errors.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

export const command: Command = {
  name: 'lock',
  summary: 'resolve the Alpine world into alpine/packages.lock.json',
  help: `Usage: psy lock [--check] [--allow-downgrade] [--offline] [--config FILE] [--verbose]

Resolves settings.alpine.world of build.config.ts against the configured repositories
(signatures checked with settings.alpine.keys) and writes every resolved package's
name, version, repository and Q1 checksum to the lockfile (settings.alpine.lockfile,
default ${DEFAULT_LOCKFILE}), in install order. settings.alpine.ownPackages (our
packages, declared under alpine/packages/NAME/) are resolved with the world; the lock
pins them by name and version (the build makes them and checks the version), and their
Alpine dependencies by checksum. Builds install exactly the lock.

A package the repositories now resolve to a LOWER version than the lock holds (a
repository index rolled back, a stale mirror) is refused, naming each package with
both versions, and the lock is left as it was.

  --check            do not write; exit 1 when the lock does not match the world, the
                     settings, or what the repositories resolve to now
  --allow-downgrade  write the lock even when packages go down in version
  --offline          use only the download cache (cache/apk) and local repositories
  --verbose          print every download`,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('lock', argv, {
      check: {type: 'boolean'},
      'allow-downgrade': {type: 'boolean'},
      offline: {type: 'boolean'},
      verbose: {type: 'boolean'},
      config: {type: 'string'},
    });
    if (positionals.length) throw new PsyError('usage', `lock takes no arguments (got '${positionals[0]}')`);
    const loaded = await loadConfig({cwd: io.cwd, configPath: values.config});
    const settings = validateAlpineSettings(loaded.config.settings?.['alpine']);
    const lockRel = settings.lockfile ?? DEFAULT_LOCKFILE;
    const lockPath = isAbsolute(lockRel) ? lockRel : join(loaded.root, lockRel);
    const ctx = {
      settings,
      projectRoot: loaded.root,
      offline: values.offline === true,
      log: values.verbose === true ? (l: string) => writeLine(io.stderr, l) : undefined,
    };
    if (values.check === true) {
      const lock = readLock(lockPath);
      const problems = await checkLock(ctx, lock);
      if (problems.length) {
        for (const p of problems) writeLine(io.stderr, `psy lock: ${lockRel}: ${p}`);
        writeLine(io.stderr, `psy lock: ${lockRel} is out of date (run psy lock)`);
        return 1;
      }
      writeLine(io.stdout, `${lockRel}: up to date (${countText(lock)})`);
      return 0;
    }
    const lock = await lockWorld(ctx);
    const before = existsSync(lockPath) ? readFileSync(lockPath, 'utf8') : undefined;
    if (before === formatLock(lock)) {
      writeLine(io.stdout, `${lockRel}: unchanged (${countText(lock)})`);
      return 0;
    }
    const previous = before === undefined ? undefined : safeReadLock(lockPath);
    const downgrades = previous === undefined ? [] : lockDowngrades(previous, lock);
    if (downgrades.length > 0 && values['allow-downgrade'] !== true) {
      const list = downgrades.map((d) => `${d.name} ${d.from} -> ${d.to}`).join(', ');
      throw new PsyError(
        'lock-downgrade',
        `${lockRel}: refusing to downgrade ${list} (the repositories resolve to older versions than the lock; pass --allow-downgrade if that is intended)`,
      );
    }
    mkdirSync(dirname(lockPath), {recursive: true});
    writeLock(lockPath, lock);
    writeLine(io.stdout, `${lockRel}: ${countText(lock)}`);
    if (previous) for (const line of lockChanges(previous, lock)) writeLine(io.stdout, `  ${line}`);
    return 0;
  },
};

function safeReadLock(path: string): AlpineLock | undefined {
  try {
    return readLock(path);
  } catch {
    return undefined; // an unreadable old lock is simply replaced
  }
}

function countText(lock: AlpineLock): string {
  const own = lock.ownPackages?.length ?? 0;
  return `${lock.packages.length} packages${own ? ` + ${own} of ours` : ''}`;
}
