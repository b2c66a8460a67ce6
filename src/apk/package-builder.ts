import {createPrivateKey, createPublicKey} from 'node:crypto';
import {lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {basename, join} from 'node:path';
import {PsyError} from '../errors.js';
import {SCRIPT_NAMES, type ScriptName} from './apk-package.js';
import {buildApk, type ApkDataEntry, type BuiltApk} from './apk-writer.js';
import {parseDependency} from './dependency.js';
import type {SigningKey} from './keys.js';
import type {SignatureAlgorithm} from './signature.js';
import {emptyMeta, isValidPackageName, type PackageMeta} from './package-meta.js';
import {indexRepository} from './repository-index.js';
import {isValidVersion} from './version.js';

/**
 * A package declared under alpine/packages/NAME/:
 *
 * ```
 * alpine/packages/NAME/
 *   apk.json     metadata (below)
 *   files/       the tree to install, paths relative to / (optional)
 *   scripts/     pre-install, post-install, pre-upgrade, ... (optional, copied as is)
 * ```
 *
 * apk.json: `{"version": "1.0-r0", "description": "...", "url", "license", "arch"
 * (default "noarch"), "depends": [...], "provides": [...], "replaces": [...],
 * "installIf": [...], "providerPriority", "replacesPriority", "triggers": [...],
 * "origin", "maintainer", "paths": {"usr/bin/tool": {"mode": "4755", "uid": 0,
 * "gid": 0}}, "dirs": ["var/lib/tool"], "symlinks": {"usr/bin/t": "tool"}}`.
 * The folder name is the package name. Files are 0644 (0755 when executable on disk)
 * and root-owned unless `paths` says otherwise; all mtimes are the build time, so the
 * package bytes depend only on the declaration, the files and the key.
 */
export interface PackageDeclaration {
  readonly dir: string;
  readonly meta: PackageMeta;
  readonly paths: Readonly<Record<string, {mode?: number; uid?: number; gid?: number}>>;
  readonly dirs: readonly string[];
  readonly symlinks: Readonly<Record<string, string>>;
  readonly scripts: ReadonlyMap<ScriptName, Buffer>;
}

const KNOWN = new Set([
  'version',
  'description',
  'url',
  'license',
  'arch',
  'depends',
  'provides',
  'replaces',
  'installIf',
  'providerPriority',
  'replacesPriority',
  'triggers',
  'origin',
  'maintainer',
  'paths',
  'dirs',
  'symlinks',
  'commit',
]);

export function readPackageDeclaration(dir: string): PackageDeclaration {
  const name = basename(dir);
  const file = join(dir, 'apk.json');
  const fail = (msg: string): never => {
    throw new PsyError('apk-package-declaration', `${file}: ${msg}`);
  };
  if (!isValidPackageName(name)) fail(`folder name '${name}' is not a valid package name`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    fail(code === 'ENOENT' ? 'missing (every package folder needs one)' : `not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('must hold an object');
  const v = raw as Record<string, unknown>;
  for (const k of Object.keys(v)) if (!KNOWN.has(k)) fail(`unknown field '${k}'`);
  const str = (k: string, def = ''): string => {
    const x = v[k];
    if (x === undefined) return def;
    if (typeof x !== 'string') return fail(`'${k}' must be a string`);
    return x;
  };
  const list = (k: string, deps: boolean): string[] => {
    const x = v[k];
    if (x === undefined) return [];
    if (!Array.isArray(x) || x.some((d) => typeof d !== 'string')) return fail(`'${k}' must be a list of strings`);
    if (deps) {
      for (const d of x as string[]) {
        try {
          parseDependency(d);
        } catch {
          fail(`'${k}' entry '${d}' is not a dependency`);
        }
      }
    }
    return x as string[];
  };
  const int = (k: string): number | undefined => {
    const x = v[k];
    if (x === undefined) return undefined;
    if (typeof x !== 'number' || !Number.isInteger(x)) return fail(`'${k}' must be an integer`);
    return x;
  };
  const version = str('version');
  if (!version) fail('\'version\' is required (e.g. "1.0-r0")');
  if (!isValidVersion(version)) fail(`'version' '${version}' is not an apk version`);
  const meta: PackageMeta = {
    ...emptyMeta(name, version),
    description: str('description', name),
    url: str('url'),
    license: str('license', 'custom'),
    arch: str('arch', 'noarch'),
    origin: str('origin', name),
    maintainer: str('maintainer'),
    commit: str('commit'),
    depends: list('depends', true),
    provides: list('provides', false),
    replaces: list('replaces', false),
    installIf: list('installIf', true),
    triggers: list('triggers', false),
    providerPriority: int('providerPriority'),
    replacesPriority: int('replacesPriority'),
  };
  const paths: Record<string, {mode?: number; uid?: number; gid?: number}> = {};
  const rawPaths = v['paths'];
  if (rawPaths !== undefined) {
    if (typeof rawPaths !== 'object' || rawPaths === null) fail("'paths' must be an object");
    for (const [p, a] of Object.entries(rawPaths as Record<string, Record<string, unknown>>)) {
      const mode = a['mode'];
      if (mode !== undefined && (typeof mode !== 'string' || !/^[0-7]{3,4}$/.test(mode))) fail(`paths['${p}'].mode must be an octal string like "0755"`);
      for (const k of ['uid', 'gid']) {
        if (a[k] !== undefined && (typeof a[k] !== 'number' || !Number.isInteger(a[k]))) fail(`paths['${p}'].${k} must be an integer`);
      }
      paths[p.replace(/^\/+/, '')] = {
        mode: typeof mode === 'string' ? parseInt(mode, 8) : undefined,
        uid: a['uid'] as number | undefined,
        gid: a['gid'] as number | undefined,
      };
    }
  }
  const symlinks = v['symlinks'] ?? {};
  if (typeof symlinks !== 'object' || symlinks === null || Object.values(symlinks).some((t) => typeof t !== 'string')) {
    fail("'symlinks' must map paths to link targets");
  }
  const scripts = new Map<ScriptName, Buffer>();
  const scriptDir = join(dir, 'scripts');
  if (exists(scriptDir)) {
    for (const f of readdirSync(scriptDir).sort()) {
      if (!SCRIPT_NAMES.includes(f as ScriptName)) fail(`scripts/${f} is not an apk script name (${SCRIPT_NAMES.join(', ')})`);
      scripts.set(f as ScriptName, readFileSync(join(scriptDir, f)));
    }
  }
  return {dir, meta, paths, dirs: list('dirs', false).map((d) => d.replace(/^\/+|\/+$/g, '')), symlinks: symlinks as Record<string, string>, scripts};
}

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Builds the signed package of one declaration. `arch` replaces a declared `noarch` only if asked. */
export function buildDeclaredPackage(decl: PackageDeclaration, key: SigningKey, sourceDateEpoch: number, algorithm: SignatureAlgorithm = 'RSA'): BuiltApk {
  const entries = new Map<string, ApkDataEntry>();
  const attrs = (p: string, mode: number) => {
    const a = decl.paths[p] ?? {};
    return {mode: a.mode ?? mode, uid: a.uid ?? 0, gid: a.gid ?? 0};
  };
  const addParents = (p: string) => {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!entries.has(d)) entries.set(d, {path: d + '/', type: 'directory', ...attrs(d, 0o755)});
    }
  };
  const filesDir = join(decl.dir, 'files');
  const walk = (rel: string) => {
    for (const name of readdirSync(join(filesDir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(filesDir, r));
      addParents(r);
      if (st.isDirectory()) {
        entries.set(r, {path: r + '/', type: 'directory', ...attrs(r, 0o755)});
        walk(r);
      } else if (st.isSymbolicLink()) {
        entries.set(r, {path: r, type: 'symlink', ...attrs(r, 0o777), mode: 0o777, linkTarget: readlinkSync(join(filesDir, r))});
      } else if (st.isFile()) {
        entries.set(r, {path: r, type: 'file', ...attrs(r, st.mode & 0o111 ? 0o755 : 0o644), data: readFileSync(join(filesDir, r))});
      } else {
        throw new PsyError('apk-package-declaration', `${join(filesDir, r)}: only files, directories and symlinks can be packaged`);
      }
    }
  };
  if (exists(filesDir)) walk('');
  for (const d of decl.dirs) {
    addParents(d);
    if (!entries.has(d)) entries.set(d, {path: d + '/', type: 'directory', ...attrs(d, 0o755)});
  }
  for (const [p, target] of Object.entries(decl.symlinks)) {
    const rel = p.replace(/^\/+/, '');
    if (entries.has(rel)) throw new PsyError('apk-package-declaration', `${decl.dir}: symlink ${rel} is also a file in files/`);
    addParents(rel);
    entries.set(rel, {path: rel, type: 'symlink', mode: 0o777, linkTarget: target});
  }
  for (const p of Object.keys(decl.paths)) {
    if (!entries.has(p)) throw new PsyError('apk-package-declaration', `${join(decl.dir, 'apk.json')}: paths['${p}'] names nothing in the package`);
  }
  return buildApk({
    meta: {...decl.meta, buildDate: sourceDateEpoch},
    entries: [...entries.values()],
    scripts: decl.scripts,
    key,
    algorithm,
  });
}

export interface BuildRepositoryOptions {
  /** Folder holding one folder per package (alpine/packages). */
  readonly packagesDir: string;
  /** Repository base folder; packages go to `<repoDir>/<arch>/`. */
  readonly repoDir: string;
  readonly arch: string;
  readonly key: SigningKey;
  readonly sourceDateEpoch: number;
  readonly description?: string;
  /** `RSA` (SHA-1, abuild's default) or `RSA256` (abuild-sign --type RSA256). */
  readonly algorithm?: SignatureAlgorithm;
  /** Only these package folders (default: all). */
  readonly only?: readonly string[];
}

/**
 * Builds every declared package into `<repoDir>/<arch>/` and writes a signed
 * APKINDEX.tar.gz: a local repository that `settings.alpine.repositories` can name.
 * The arch folder is replaced as a whole, so removed packages disappear.
 */
export function buildRepository(opts: BuildRepositoryOptions): {packages: BuiltApk[]; indexPath: string} {
  const names = readdirSync(opts.packagesDir)
    .filter((n) => statSync(join(opts.packagesDir, n)).isDirectory())
    .filter((n) => !opts.only || opts.only.includes(n))
    .sort();
  const archDir = join(opts.repoDir, opts.arch);
  const tmp = `${archDir}.tmp-${process.pid}`;
  rmSync(tmp, {recursive: true, force: true});
  mkdirSync(tmp, {recursive: true});
  const packages: BuiltApk[] = [];
  for (const n of names) {
    const decl = readPackageDeclaration(join(opts.packagesDir, n));
    if (decl.meta.arch !== 'noarch' && decl.meta.arch !== opts.arch) continue;
    const built = buildDeclaredPackage(decl, opts.key, opts.sourceDateEpoch, opts.algorithm);
    writeFileSync(join(tmp, `${built.meta.name}-${built.meta.version}.apk`), built.bytes);
    packages.push(built);
  }
  indexRepository({
    archDir: tmp,
    key: opts.key,
    description: opts.description ?? '',
    mtime: opts.sourceDateEpoch,
    algorithm: opts.algorithm,
    rewriteArch: opts.arch,
  });
  rmSync(archDir, {recursive: true, force: true});
  renameSync(tmp, archDir);
  return {packages, indexPath: join(archDir, 'APKINDEX.tar.gz')};
}

/**
 * Loads an abuild private key (PEM). The public key name is the private key's file
 * name + `.pub` (abuild: PACKAGER_PRIVKEY=/x/me-5f0a.rsa → me-5f0a.rsa.pub), unless given.
 */
export function loadSigningKey(privateKeyPath: string, publicName?: string): SigningKey {
  let pem: string;
  try {
    pem = readFileSync(privateKeyPath, 'utf8');
  } catch (err) {
    throw new PsyError('apk-keys', `signing key ${privateKeyPath} cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  let pub: string;
  try {
    pub = createPublicKey(createPrivateKey(pem)).export({type: 'spki', format: 'pem'}).toString();
  } catch {
    throw new PsyError('apk-keys', `${privateKeyPath} is not a PEM RSA private key`);
  }
  return {name: publicName ?? `${basename(privateKeyPath)}.pub`, privateKeyPem: pem, publicKeyPem: pub};
}
