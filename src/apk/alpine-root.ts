import {readdirSync, readFileSync, statSync} from 'node:fs';
import {isAbsolute, join, resolve as resolvePath} from 'node:path';
import {PsyError} from '../errors.js';
import type {ApkPackage} from './apk-package.js';
import {installPackages, type InstallResult} from './installer.js';
import {loadKeyring, type Keyring} from './keys.js';
import {type AlpineLock} from './lockfile.js';
import {writeManifest} from './manifest.js';
import {parseRepositoryLine, RepositoryClient, type DownloadProgress, type RepositorySpec} from './repository.js';
import {checkPackageSet, resolve, type ResolverRepository} from './resolver.js';
import {OWN_REPOSITORY, ownPackageDrift, ownPackageRecords} from './own-packages.js';
import {keyDirs, type AlpineSettings} from './settings.js';

/** What the Alpine operations need: validated settings and where the project is. */
export interface AlpineContext {
  readonly settings: AlpineSettings;
  /** Project root (folder of build.config.ts): relative paths in settings start here. */
  readonly projectRoot: string;
  /** Download cache; default `<projectRoot>/cache/apk`. */
  readonly cacheDir?: string;
  readonly offline?: boolean;
  readonly log?: (line: string) => void;
  /** Bytes of each download as they arrive (for a progress display). */
  readonly progress?: DownloadProgress;
}

function keyFolders(ctx: AlpineContext): string[] {
  return keyDirs(ctx.settings).map((d) => (isAbsolute(d) ? d : resolvePath(ctx.projectRoot, d)));
}

export function openRepositories(ctx: AlpineContext): {client: RepositoryClient; specs: RepositorySpec[]; keyring: Keyring} {
  const keyring = loadKeyring(keyFolders(ctx));
  const client = new RepositoryClient({
    baseDir: ctx.projectRoot,
    arch: ctx.settings.arch,
    keyring,
    cacheDir: ctx.cacheDir ?? resolvePath(ctx.projectRoot, ctx.settings.cacheDir ?? join('cache', 'apk')),
    offline: ctx.offline,
    log: ctx.log,
    progress: ctx.progress,
  });
  const specs = ctx.settings.repositories.map((r) => parseRepositoryLine(r, ctx.settings.release));
  return {client, specs, keyring};
}

async function loadIndexes(ctx: AlpineContext): Promise<ResolverRepository[]> {
  const {client, specs} = openRepositories(ctx);
  // every download settles first, then the first configured repository's failure is
  // reported: the same message whichever download fails first
  const settled = await Promise.allSettled(specs.map((s) => client.index(s)));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  const indexes = settled.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<RepositoryClient['index']>>>).value);
  const repos: ResolverRepository[] = specs.map((s, i) => ({name: s.location, tag: s.tag, records: indexes[i]!.records}));
  // our declarations first: on equal versions ours win, as a local repository listed first would
  const own = ownPackageRecords(ctx.settings, ctx.projectRoot);
  return own.length ? [{name: OWN_REPOSITORY, records: own}, ...repos] : repos;
}

function fullWorld(settings: AlpineSettings): string[] {
  return [...new Set([...settings.world, ...(settings.ownPackages ?? [])])];
}

/**
 * Resolves the world and our own packages against the repositories into a lock
 * (`psy lock`). Alpine packages are pinned by Q1 checksum; ours (built by the graph)
 * by name and version, in `ownPackages`.
 */
export async function lockWorld(ctx: AlpineContext): Promise<AlpineLock> {
  const repos = await loadIndexes(ctx);
  const all = resolve({world: fullWorld(ctx.settings), repositories: repos, arch: ctx.settings.arch});
  const resolved = all.filter((p) => p.repository !== OWN_REPOSITORY);
  const own = all.filter((p) => p.repository === OWN_REPOSITORY);
  return {
    lockVersion: 1,
    release: ctx.settings.release,
    arch: ctx.settings.arch,
    repositories: ctx.settings.repositories.map((r) => parseRepositoryLine(r, ctx.settings.release).location),
    world: [...ctx.settings.world],
    packages: resolved.map((p) => ({
      name: p.record.name,
      version: p.record.version,
      repository: p.repository,
      checksum: p.record.checksum,
    })),
    ...(ctx.settings.ownPackages?.length
      ? {ownWorld: [...ctx.settings.ownPackages], ownPackages: own.map((p) => ({name: p.record.name, version: p.record.version}))}
      : {}),
  };
}

/** Where the lock no longer matches the settings (no repository access needed). */
export function lockSettingsProblems(settings: AlpineSettings, lock: AlpineLock): string[] {
  const problems: string[] = [];
  const repos = settings.repositories.map((r) => parseRepositoryLine(r, settings.release).location);
  if (lock.arch !== settings.arch) problems.push(`arch is ${settings.arch} but the lock is for ${lock.arch}`);
  if (lock.release !== settings.release) problems.push(`release is ${settings.release} but the lock is for ${lock.release}`);
  const added = settings.world.filter((w) => !lock.world.includes(w));
  const removed = lock.world.filter((w) => !settings.world.includes(w));
  if (added.length) problems.push(`world adds ${added.join(', ')}`);
  if (removed.length) problems.push(`world drops ${removed.join(', ')}`);
  if (JSON.stringify(repos) !== JSON.stringify(lock.repositories)) problems.push('repositories differ from the ones the lock was made with');
  const ownWanted = settings.ownPackages ?? [];
  const ownLocked = lock.ownWorld ?? [];
  const ownAdded = ownWanted.filter((w) => !ownLocked.includes(w));
  const ownRemoved = ownLocked.filter((w) => !ownWanted.includes(w));
  if (ownAdded.length) problems.push(`ownPackages adds ${ownAdded.join(', ')}`);
  if (ownRemoved.length) problems.push(`ownPackages drops ${ownRemoved.join(', ')}`);
  return problems;
}

/**
 * `psy lock --check`: the settings must be those the lock was made from, and resolving
 * the world again (preferring the locked identities) must give exactly the lock.
 */
export async function checkLock(ctx: AlpineContext, lock: AlpineLock): Promise<string[]> {
  const problems = lockSettingsProblems(ctx.settings, lock);
  if (problems.length) return problems;
  problems.push(...ownPackageDrift(ctx.settings, ctx.projectRoot, lock.ownPackages ?? []));
  const repos = await loadIndexes(ctx);
  const resolvedAll = resolve({
    world: fullWorld(ctx.settings),
    repositories: repos,
    arch: ctx.settings.arch,
    preferred: new Set(lock.packages.map((p) => p.checksum)),
  });
  const again = resolvedAll.filter((p) => p.repository !== OWN_REPOSITORY);
  const ownNames = new Set(resolvedAll.filter((p) => p.repository === OWN_REPOSITORY).map((p) => p.record.name));
  const ownLocked = new Set((lock.ownPackages ?? []).map((p) => p.name));
  for (const n of ownNames) if (!ownLocked.has(n)) problems.push(`${n} (ours) is needed but not locked`);
  for (const n of ownLocked) if (!ownNames.has(n)) problems.push(`${n} (ours) is locked but no longer needed`);
  const want = new Map(again.map((p) => [p.record.name, p]));
  const have = new Map(lock.packages.map((p) => [p.name, p]));
  for (const [name, p] of want) {
    const l = have.get(name);
    if (!l) problems.push(`${name}-${p.record.version} is needed but not locked`);
    else if (l.checksum !== p.record.checksum) {
      problems.push(`${name}: locked ${l.version} (${l.checksum}) is no longer available; resolves to ${p.record.version}`);
    }
  }
  for (const name of have.keys()) if (!want.has(name)) problems.push(`${name} is locked but no longer needed`);
  return problems;
}

export interface InstallFromLockOptions extends AlpineContext {
  readonly lock: AlpineLock;
  /** Folder to install into (created; must be empty). */
  readonly targetRoot: string;
  readonly sourceDateEpoch: number;
  /** Also write the manifest (see manifest.ts) to this file. */
  readonly manifestPath?: string;
  /**
   * Our built packages (the lock's ownPackages), verified by the caller; each must have
   * its locked version. Installed after the Alpine packages.
   */
  readonly ownPackages?: readonly ApkPackage[];
}

/**
 * Installs exactly the locked packages into a root folder: each fetched (or taken from
 * the cache), checked against its locked identity and its signature, installed in lock
 * order. The lock must match the settings; a stale lock is an error, not a silent
 * re-resolve.
 */
export async function installFromLock(opts: InstallFromLockOptions): Promise<InstallResult> {
  const stale = lockSettingsProblems(opts.settings, opts.lock);
  if (stale.length) {
    throw new PsyError('apk-lock-stale', `the lock does not match settings.alpine (${stale.join('; ')}): run psy lock`);
  }
  const {client, specs} = openRepositories(opts);
  const byLocation = new Map(specs.map((s) => [s.location, s]));
  const fetchOne = async (p: AlpineLock['packages'][number]): Promise<ApkPackage> => {
    const spec = byLocation.get(p.repository);
    if (!spec) throw new PsyError('apk-lock-stale', `locked ${p.name} comes from ${p.repository}, which is not configured: run psy lock`);
    return client.package(spec, p.name, p.version, p.checksum);
  };
  const packages: ApkPackage[] = [];
  // a few downloads at a time, install order kept
  const queue = [...opts.lock.packages];
  const results = new Array<ApkPackage>(queue.length);
  let next = 0;
  let failed = false;
  // every worker stops and is waited for before an error is reported, so nothing is
  // still writing into the cache after this returns
  const settled = await Promise.allSettled(
    Array.from({length: Math.min(4, queue.length)}, async () => {
      while (next < queue.length && !failed) {
        const i = next++;
        try {
          results[i] = await fetchOne(queue[i]!);
        } catch (err) {
          failed = true;
          throw err;
        }
      }
    }),
  );
  const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
  packages.push(...results);
  for (const l of opts.lock.ownPackages ?? []) {
    const built = opts.ownPackages?.find((p) => p.meta.name === l.name);
    if (!built) throw new PsyError('apk-lock-stale', `${l.name} is locked as one of our packages but was not given to the install (build it first)`);
    if (built.meta.version !== l.version)
      throw new PsyError('apk-lock-stale', `${l.name} is locked at ${l.version} but the built package is ${built.meta.version}: run psy lock`);
    packages.push(built);
  }
  // a hand-edited or truncated lock must not give a root with missing dependencies
  const gaps = checkPackageSet(
    [...opts.settings.world, ...(opts.lock.ownWorld ?? [])],
    packages.map((p) => ({...p.meta, checksum: p.checksum, size: p.size})),
  );
  if (gaps.length) throw new PsyError('apk-lock-stale', `the lock is not complete (${gaps.slice(0, 3).join('; ')}): run psy lock`);
  const keys: Array<[string, Buffer]> = [];
  for (const dir of keyFolders(opts)) {
    for (const name of readdirSync(dir).sort()) {
      if (statSync(join(dir, name)).isFile()) keys.push([name, readFileSync(join(dir, name))]);
    }
  }
  const runtime = opts.settings.runtimeRepositories ?? opts.settings.repositories.filter((r) => /^(@\S+\s+)?https?:\/\//.test(r.trim()));
  const result = installPackages({
    root: opts.targetRoot,
    packages,
    world: [...opts.settings.world, ...(opts.lock.ownWorld ?? [])],
    repositories: runtime.map((r) => r.replaceAll('{release}', opts.settings.release)),
    keys,
    arch: opts.settings.arch,
    accounts: opts.settings.accounts,
    sourceDateEpoch: opts.sourceDateEpoch,
    log: opts.log,
  });
  if (opts.manifestPath) writeManifest(opts.manifestPath, result.manifest);
  return result;
}
