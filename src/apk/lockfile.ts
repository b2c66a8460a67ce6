import {readFileSync} from 'node:fs';
import {PsyError} from '../errors.js';
import {writeFileAtomicSync} from '../fs/atomic-write.js';
import {compareVersions} from './version.js';

/** One pinned package: enough to fetch it again and know it is the same bytes. */
export interface LockedPackage {
  readonly name: string;
  readonly version: string;
  /** The repository location as configured (`settings.alpine.repositories`). */
  readonly repository: string;
  /** `Q1…` identity: SHA-1 of the control section, which pins the data via datahash. */
  readonly checksum: string;
}

/**
 * alpine/packages.lock.json: the resolved world. Packages are in install order
 * (dependencies first). The settings it was resolved from are recorded so a change of
 * world, repositories, arch or release is noticed (`psy lock --check`).
 */
export interface AlpineLock {
  readonly lockVersion: 1;
  readonly release: string;
  readonly arch: string;
  readonly repositories: readonly string[];
  readonly world: readonly string[];
  readonly packages: readonly LockedPackage[];
  /** settings.alpine.ownPackages the lock was made with (absent: none). */
  readonly ownWorld?: readonly string[];
  /**
   * Our own packages (alpine/packages/NAME/) the world needs, in install order. The
   * build makes them, so the lock pins name and version only; the root install checks
   * that the built package has exactly this version.
   */
  readonly ownPackages?: readonly OwnLockedPackage[];
}

export interface OwnLockedPackage {
  readonly name: string;
  readonly version: string;
}

export function readLock(path: string): AlpineLock {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PsyError('apk-lock', code === 'ENOENT' ? `lockfile ${path} does not exist (run psy lock)` : `cannot read lockfile ${path} (${code})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new PsyError('apk-lock', `lockfile ${path} is not valid JSON (${(err as Error).message})`);
  }
  const l = v as Partial<AlpineLock>;
  if (
    l.lockVersion !== 1 ||
    !Array.isArray(l.packages) ||
    !Array.isArray(l.world) ||
    !Array.isArray(l.repositories) ||
    typeof l.arch !== 'string' ||
    typeof l.release !== 'string'
  ) {
    throw new PsyError('apk-lock', `lockfile ${path} is not a psy Alpine lock (lockVersion 1)`);
  }
  l.packages.forEach((p, i) => {
    for (const k of ['name', 'version', 'repository', 'checksum'] as const) {
      if (typeof p?.[k] !== 'string' || p[k] === '') throw new PsyError('apk-lock', `lockfile ${path}: packages[${i}].${k} is missing`);
    }
  });
  if (l.ownWorld !== undefined && (!Array.isArray(l.ownWorld) || l.ownWorld.some((n) => typeof n !== 'string'))) {
    throw new PsyError('apk-lock', `lockfile ${path}: ownWorld must be a list of package names`);
  }
  if (l.ownPackages !== undefined && !Array.isArray(l.ownPackages)) throw new PsyError('apk-lock', `lockfile ${path}: ownPackages must be a list`);
  (l.ownPackages ?? []).forEach((p, i) => {
    for (const k of ['name', 'version'] as const) {
      if (typeof p?.[k] !== 'string' || p[k] === '') throw new PsyError('apk-lock', `lockfile ${path}: ownPackages[${i}].${k} is missing`);
    }
  });
  return l as AlpineLock;
}

/** Stable text (one package per line) so diffs of the lock read well in review. */
export function formatLock(lock: AlpineLock): string {
  const head = {
    lockVersion: lock.lockVersion,
    release: lock.release,
    arch: lock.arch,
    repositories: lock.repositories,
    world: lock.world,
  };
  const headText = JSON.stringify(head, null, 2).replace(/\n}$/, '');
  const pkgs = lock.packages.map((p) => '    ' + JSON.stringify({name: p.name, version: p.version, repository: p.repository, checksum: p.checksum}));
  let own = '';
  if (lock.ownWorld?.length || lock.ownPackages?.length) {
    const ownPkgs = (lock.ownPackages ?? []).map((p) => '    ' + JSON.stringify({name: p.name, version: p.version}));
    own = `,\n  "ownWorld": ${JSON.stringify(lock.ownWorld ?? [])},\n  "ownPackages": [\n${ownPkgs.join(',\n')}\n  ]`;
  }
  return `${headText},\n  "packages": [\n${pkgs.join(',\n')}\n  ]${own}\n}\n`;
}

export function writeLock(path: string, lock: AlpineLock): void {
  writeFileAtomicSync(path, formatLock(lock));
}

/** What changed between two locks, one line per package, sorted by name. */
export function lockChanges(before: AlpineLock, after: AlpineLock): string[] {
  const own = (l: AlpineLock) => (l.ownPackages ?? []).map((p) => ({...p, repository: 'own', checksum: `own:${p.version}`}));
  const old = new Map([...before.packages, ...own(before)].map((p) => [p.name, p]));
  const now = new Map([...after.packages, ...own(after)].map((p) => [p.name, p]));
  const names = [...new Set([...old.keys(), ...now.keys()])].sort();
  const out: string[] = [];
  for (const n of names) {
    const a = old.get(n);
    const b = now.get(n);
    if (!a) out.push(`+ ${n} ${b!.version}`);
    else if (!b) out.push(`- ${n} ${a.version}`);
    else if (a.version !== b.version) out.push(`~ ${n} ${a.version} -> ${b.version}`);
    else if (a.checksum !== b.checksum) out.push(`~ ${n} ${a.version} (rebuilt: ${a.checksum} -> ${b.checksum})`);
  }
  return out;
}

/** A repository package the new lock pins at a lower version than the old one. */
export interface LockDowngrade {
  readonly name: string;
  readonly from: string;
  readonly to: string;
}

/**
 * Repository packages whose version went down (apk's version order), sorted by name. A
 * repository serving an older index than before (a rollback, or a stale mirror) must not
 * re-pin the world silently. Our own packages are declared in the project, not resolved
 * from an index, and are left out.
 */
export function lockDowngrades(before: AlpineLock, after: AlpineLock): LockDowngrade[] {
  const old = new Map(before.packages.map((p) => [p.name, p.version]));
  const out: LockDowngrade[] = [];
  for (const p of after.packages) {
    const from = old.get(p.name);
    if (from !== undefined && compareVersions(p.version, from) < 0) out.push({name: p.name, from, to: p.version});
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
