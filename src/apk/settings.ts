import {PsyError} from '../errors.js';
import {parseWorldDependency} from './dependency.js';
import {parseRepositoryLine} from './repository.js';
import type {AccountsSpec, GroupSpec, UserSpec} from './script-effects.js';

/**
 * `settings.alpine` of build.config.ts: what Alpine root psy resolves, locks and installs.
 *
 * ```ts
 * settings: {
 *   alpine: {
 *     release: 'v3.20',
 *     arch: 'x86_64',
 *     repositories: ['https://dl-cdn.alpinelinux.org/alpine/{release}/main', 'alpine/repo'],
 *     keys: 'alpine/keys',
 *     world: ['alpine-base', 'linux-lts', 'openssh'],
 *   },
 * }
 * ```
 */
export interface AlpineSettings {
  /** Alpine release, substituted for `{release}` in repository locations (e.g. `v3.20`). */
  readonly release: string;
  /** Architecture: `x86_64`, `aarch64`, ... (repositories hold `<location>/<arch>/`). */
  readonly arch: string;
  /** `[@tag] location`: http(s) URL, file:// URL or folder (relative to the project root). */
  readonly repositories: readonly string[];
  /** Folder(s) of trusted public keys (`*.rsa.pub`), relative to the project root (alias: keysDir). */
  readonly keys: string | readonly string[];
  /** Packages to install: apk dependency syntax (`name`, `name>=1.2`, `name@tag`, `!name`). */
  readonly world: readonly string[];
  /** Lockfile path; default `alpine/packages.lock.json`. */
  readonly lockfile?: string;
  /** Download cache (relative to the project root); default `cache/apk`. */
  readonly cacheDir?: string;
  /** etc/apk/repositories of the installed system (alias: nodeRepositories); default: the http(s) repositories. */
  readonly runtimeRepositories?: readonly string[];
  /** Groups and users to create beyond what packages create. */
  readonly accounts?: AccountsSpec;
  /**
   * Our own packages (folders of `packagesDir`) that go into the root, resolved together
   * with the world; their dependencies must come from the repositories.
   */
  readonly ownPackages?: readonly string[];
  /** Folder of our package declarations (alpine/packages/NAME/); default `alpine/packages`. */
  readonly packagesDir?: string;
}

export const DEFAULT_PACKAGES_DIR = 'alpine/packages';

export const DEFAULT_LOCKFILE = 'alpine/packages.lock.json';

/** Gives `settings.alpine` in build.config.ts its type. */
export function defineAlpineSettings(settings: AlpineSettings): AlpineSettings {
  return settings;
}

/** Validates `settings.alpine` (unknown input from the config) with errors naming the field. */
export function validateAlpineSettings(value: unknown, where = 'settings.alpine'): AlpineSettings {
  const fail = (field: string, what: string): never => {
    throw new PsyError('apk-settings', `${where}.${field} ${what}`);
  };
  if (value === undefined || value === null) throw new PsyError('apk-settings', `${where} is missing in the config`);
  if (typeof value !== 'object' || Array.isArray(value)) throw new PsyError('apk-settings', `${where} must be an object`);
  // settings.alpine is shared with the OS build (kernel flavor, partitions, ...): fields
  // this module does not know are left to their owners. `keysDir`, `nodeRepositories`
  // and `cacheDir` are the names the OS build uses for the same things.
  const v = {...(value as Record<string, unknown>)};
  if (v['keys'] === undefined && v['keysDir'] !== undefined) v['keys'] = v['keysDir'];
  if (v['runtimeRepositories'] === undefined && v['nodeRepositories'] !== undefined) v['runtimeRepositories'] = v['nodeRepositories'];
  const str = (k: string, re?: RegExp): string => {
    const s = v[k];
    if (typeof s !== 'string' || s === '') return fail(k, 'must be a non-empty string');
    if (re && !re.test(s)) return fail(k, `'${s}' is not valid`);
    return s;
  };
  const strList = (k: string, optional = false): string[] | undefined => {
    const a = v[k];
    if (a === undefined && optional) return undefined;
    if (!Array.isArray(a) || a.some((x) => typeof x !== 'string' || x === '')) return fail(k, 'must be a list of non-empty strings');
    return a as string[];
  };
  const release = str('release', /^[A-Za-z0-9._-]+$/);
  const arch = str('arch', /^[a-z0-9_]+$/);
  const repositories = strList('repositories')!;
  if (repositories.length === 0) fail('repositories', 'must name at least one repository');
  repositories.forEach((r, i) => {
    try {
      parseRepositoryLine(r, release);
    } catch (err) {
      fail(`repositories[${i}]`, (err as Error).message.replace(/^repository /, ''));
    }
  });
  const rawKeys = v['keys'];
  const keys =
    typeof rawKeys === 'string' && rawKeys !== ''
      ? rawKeys
      : Array.isArray(rawKeys) && rawKeys.length > 0 && rawKeys.every((k) => typeof k === 'string' && k !== '')
        ? (rawKeys as string[])
        : fail('keys', 'must be a folder of trusted keys or a list of folders (keysDir also works)');
  const world = strList('world')!;
  if (world.length === 0) fail('world', 'must list at least one package');
  world.forEach((w, i) => {
    try {
      parseWorldDependency(w);
    } catch {
      fail(`world[${i}]`, `'${w}' is not a dependency (name, name>=version, name@tag, !name)`);
    }
  });
  const lockfile = v['lockfile'] === undefined ? undefined : str('lockfile');
  const cacheDir = v['cacheDir'] === undefined ? undefined : str('cacheDir');
  const runtimeRepositories = strList('runtimeRepositories', true);
  const accounts = v['accounts'] === undefined ? undefined : validateAccounts(v['accounts'], `${where}.accounts`);
  const ownPackages = strList('ownPackages', true);
  ownPackages?.forEach((n, i) => {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/.test(n)) fail(`ownPackages[${i}]`, `'${n}' is not a package folder name`);
  });
  const packagesDir = v['packagesDir'] === undefined ? undefined : str('packagesDir');
  return {release, arch, repositories, keys, world, lockfile, cacheDir, runtimeRepositories, accounts, ownPackages, packagesDir};
}

function validateAccounts(value: unknown, where: string): AccountsSpec {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PsyError('apk-settings', `${where} must be an object`);
  const v = value as Record<string, unknown>;
  const list = (k: string): Record<string, unknown>[] => {
    const a = v[k];
    if (a === undefined) return [];
    if (!Array.isArray(a) || a.some((x) => typeof x !== 'object' || x === null)) {
      throw new PsyError('apk-settings', `${where}.${k} must be a list of objects`);
    }
    return a as Record<string, unknown>[];
  };
  const name = (x: unknown, at: string): string => {
    if (typeof x !== 'string' || !/^[a-z_][a-z0-9_-]*\$?$/.test(x)) throw new PsyError('apk-settings', `${at}.name must be a valid account name`);
    return x;
  };
  const id = (x: unknown, at: string): number => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 65534) throw new PsyError('apk-settings', `${at} must be an integer 0..65534`);
    return x;
  };
  const groups: GroupSpec[] = list('groups').map((g, i) => {
    const at = `${where}.groups[${i}]`;
    return {name: name(g['name'], at), gid: id(g['gid'], `${at}.gid`), members: (g['members'] as string[] | undefined) ?? []};
  });
  const users: UserSpec[] = list('users').map((u, i) => {
    const at = `${where}.users[${i}]`;
    const opt = (k: string) => {
      const x = u[k];
      if (x !== undefined && typeof x !== 'string') throw new PsyError('apk-settings', `${at}.${k} must be a string`);
      return x as string | undefined;
    };
    const extra = u['groups'];
    if (extra !== undefined && (!Array.isArray(extra) || extra.some((x) => typeof x !== 'string'))) {
      throw new PsyError('apk-settings', `${at}.groups must be a list of group names`);
    }
    return {
      name: name(u['name'], at),
      uid: id(u['uid'], `${at}.uid`),
      group: opt('group'),
      groups: extra as string[] | undefined,
      home: opt('home'),
      shell: opt('shell'),
      gecos: opt('gecos'),
      passwordHash: opt('passwordHash'),
    };
  });
  return {groups, users};
}

export function keyDirs(s: AlpineSettings): readonly string[] {
  return typeof s.keys === 'string' ? [s.keys] : s.keys;
}
