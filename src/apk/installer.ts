import {createHash} from 'node:crypto';
import {mkdirSync, readdirSync} from 'node:fs';
import {PsyError} from '../errors.js';
import {SCRIPT_NAMES, type ApkPackage, type ScriptName} from './apk-package.js';
import {formatInstalledDb, formatScriptsTar, formatTriggers, type InstalledDir, type InstalledPackage} from './installed-db.js';
import {manifestFromMap, type RootfsManifest} from './manifest.js';
import {RootTree} from './root-tree.js';
import {applyAccounts, applyBaselayoutEffects, installBusyboxLinks, lockEmptyRootPassword, REPRODUCED, type AccountsSpec} from './script-effects.js';

export interface InstallOptions {
  /** Target folder; created if missing, must be empty. */
  readonly root: string;
  /** Verified packages in install order (dependencies first), e.g. from the resolver. */
  readonly packages: readonly ApkPackage[];
  /** etc/apk/world lines. */
  readonly world: readonly string[];
  /** etc/apk/repositories lines (URLs the booted node should use). */
  readonly repositories: readonly string[];
  /** Public keys to install in etc/apk/keys (file name → PEM). */
  readonly keys: ReadonlyArray<readonly [string, string | Buffer]>;
  readonly arch: string;
  /** Extra groups and users (beyond what the packages' scripts would create). */
  readonly accounts?: AccountsSpec;
  /** Time for files psy writes itself (db, world, links). */
  readonly sourceDateEpoch: number;
  /** Lock an empty root password in etc/shadow as Alpine's images do (default true). */
  readonly lockRootPassword?: boolean;
  /** Device nodes and fifos in packages are refused unless allowed (recorded, never created). */
  readonly allowDevices?: boolean;
  /** Verbose progress, including every install script that was not run. */
  readonly log?: (line: string) => void;
}

export interface SkippedScript {
  readonly package: string;
  readonly script: ScriptName;
  /** What psy did instead, if anything. */
  readonly reproducedAs: string | undefined;
}

export interface InstallResult {
  /** Ownership and modes of everything in the root (see manifest.ts for the format). */
  readonly manifest: RootfsManifest;
  readonly skippedScripts: readonly SkippedScript[];
  readonly installed: readonly InstalledPackage[];
  readonly busyboxLinks: number;
}

const INITDB_DEVICES: ReadonlyArray<readonly [string, number, number, number]> = [
  ['console', 0o600, 5, 1],
  ['null', 0o666, 1, 3],
  ['random', 0o666, 1, 8],
  ['urandom', 0o666, 1, 9],
  ['zero', 0o666, 1, 5],
];

interface Owner {
  readonly pkg: number;
  readonly dir: string;
  readonly name: string;
  readonly checksum: string;
}

/**
 * Installs verified packages into a root folder without root privileges: files,
 * directories, symlinks and hardlinks with apk's overwrite rules, then the installed
 * database (installed, scripts.tar, triggers, lock), etc/apk/{world,repositories,arch,keys},
 * and the reproduced effects of the install scripts. Returns the manifest of true
 * ownership and modes.
 */
export function installPackages(opts: InstallOptions): InstallResult {
  const log = opts.log ?? (() => {});
  mkdirSync(opts.root, {recursive: true});
  if (readdirSync(opts.root).length > 0) {
    throw new PsyError('apk-install', `install root ${opts.root} is not empty`);
  }
  const tree = new RootTree(opts.root);
  const epoch = opts.sourceDateEpoch;
  tree.record({path: '', type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: epoch, onDisk: true});

  const owners = new Map<string, Owner>();
  const installed: InstalledPackage[] = [];
  const skipped: SkippedScript[] = [];

  opts.packages.forEach((pkg, index) => {
    const meta = pkg.meta;
    const what = `package ${meta.name}-${meta.version}`;
    const dirs = new Map<string, InstalledDir>();
    const dirOf = (path: string, e?: {uid: number; gid: number; mode: number}) => {
      let d = dirs.get(path);
      if (!d) {
        d = {path, uid: e?.uid ?? 0, gid: e?.gid ?? 0, mode: e?.mode ?? 0o755, files: new Map()};
        dirs.set(path, d);
      }
      return d;
    };
    for (const entry of pkg.dataEntries) {
      const rel = RootTree.normalize(entry.path, what);
      if (rel === '') continue;
      const real = tree.resolve(rel, what);
      const slash = rel.lastIndexOf('/');
      const dirName = slash < 0 ? '' : rel.slice(0, slash);
      const base = rel.slice(slash + 1);
      const attrs = {mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime};
      if (entry.type === 'directory') {
        tree.ensureDir(rel, attrs, what);
        dirOf(rel, entry);
        continue;
      }
      // apk keeps a package's files only in directories the package itself lists,
      // and refuses the package otherwise ("no dirent in archive")
      if (dirName !== '' && !dirs.has(dirName)) {
        throw new PsyError(
          'apk-corrupt',
          `${what}: '${rel}' has no entry for its directory '${dirName}/' in the package (apk refuses it: no dirent in archive)`,
        );
      }
      if (entry.type === 'char' || entry.type === 'block' || entry.type === 'fifo') {
        if (!opts.allowDevices) {
          throw new PsyError('apk-unsafe-path', `${what}: device file '${rel}' is not allowed in packages`);
        }
        tree.special(real, entry.type, {...attrs, major: entry.devMajor, minor: entry.devMinor});
        continue;
      }
      let checksum: string;
      if (entry.type === 'file') {
        const sha = createHash('sha1').update(entry.data);
        const hex = sha.copy().digest('hex');
        const want = entry.pax['APK-TOOLS.checksum.SHA1'];
        if (want !== undefined && want !== hex) {
          throw new PsyError('apk-checksum-mismatch', `${what}: '${rel}' does not match its recorded SHA-1`);
        }
        checksum = 'Q1' + sha.digest('base64');
      } else if (entry.type === 'hardlink') {
        // a hardlink has the content of the file it links to
        const target = tree.resolve(RootTree.normalize(entry.linkTarget, what), what);
        const owner = owners.get(target);
        if (!owner) throw new PsyError('apk-unsafe-path', `${what}: hardlink '${rel}' points to '${entry.linkTarget}', which this install did not write`);
        checksum = owner.checksum;
      } else {
        checksum = 'Q1' + createHash('sha1').update(entry.linkTarget).digest('base64');
      }
      const prev = owners.get(real);
      if (prev && prev.pkg !== index) {
        const other = installed[prev.pkg]!.record;
        if (prev.checksum === checksum) {
          // identical content: the first package keeps it
          continue;
        }
        const mayReplace = meta.replaces.some((r) => r.split(/[<>=~]/)[0] === other.name) || meta.origin === other.origin;
        if (!mayReplace) {
          throw new PsyError('apk-file-conflict', `${what}: '${rel}' is already installed by ${other.name}-${other.version} (no replaces, different origin)`);
        }
        installed[prev.pkg]!.dirs.get(prev.dir)?.files.delete(prev.name);
      } else if (!prev && tree.lstat(real)?.isDirectory()) {
        throw new PsyError('apk-file-conflict', `${what}: '${rel}' would replace a directory`);
      }
      switch (entry.type) {
        case 'file':
          tree.writeFile(real, entry.data, attrs);
          break;
        case 'symlink':
          tree.symlink(real, entry.linkTarget, {uid: entry.uid, gid: entry.gid, mtime: entry.mtime});
          break;
        case 'hardlink': {
          const targetRel = RootTree.normalize(entry.linkTarget, what);
          tree.hardlink(real, tree.resolve(targetRel, what), attrs);
          break;
        }
        default: {
          const never: never = entry.type;
          void never;
        }
      }
      owners.set(real, {pkg: index, dir: dirName, name: base, checksum});
      dirOf(dirName).files.set(base, {
        name: base,
        uid: entry.uid,
        gid: entry.gid,
        mode: entry.type === 'symlink' ? 0o777 : entry.mode,
        checksum,
      });
    }
    installed.push({
      // a noarch package is recorded with the arch it was installed for, as apk records
      // the index's (rewritten) arch: `apk fix` looks for it in <repo>/<arch>/
      record: {...meta, arch: meta.arch === 'noarch' ? opts.arch : meta.arch, checksum: pkg.checksum, size: pkg.size},
      dirs,
      scripts: pkg.scripts,
      triggers: meta.triggers,
    });
    log(`installed ${meta.name}-${meta.version}`);
  });

  // Script effects, then accounts from the configuration.
  const byName = new Set(opts.packages.map((p) => p.meta.name));
  if (byName.has('alpine-baselayout')) applyBaselayoutEffects(tree, epoch);
  const busyboxLinks = installBusyboxLinks(tree, epoch);
  if ((opts.lockRootPassword ?? true) && lockEmptyRootPassword(tree, epoch)) log('locked the empty root password in etc/shadow');
  if (opts.accounts && ((opts.accounts.users?.length ?? 0) > 0 || (opts.accounts.groups?.length ?? 0) > 0)) {
    applyAccounts(tree, opts.accounts, epoch);
  }
  for (const pkg of opts.packages) {
    for (const script of SCRIPT_NAMES) {
      if (!pkg.scripts.has(script) || script.includes('deinstall') || script.includes('upgrade')) continue;
      const reproducedAs = REPRODUCED[`${pkg.meta.name}.${script}`];
      skipped.push({package: pkg.meta.name, script, reproducedAs});
      log(`skipped ${pkg.meta.name}.${script}${reproducedAs ? ` (reproduced: ${reproducedAs})` : ' (not reproduced)'}`);
    }
  }

  writeDatabase(tree, opts, installed);
  tree.applyTimes();
  return {manifest: manifestFromMap(tree.entries), skippedScripts: skipped, installed, busyboxLinks};
}

function writeDatabase(tree: RootTree, opts: InstallOptions, installed: readonly InstalledPackage[]): void {
  const epoch = opts.sourceDateEpoch;
  const dir = (rel: string) => tree.ensureDir(rel, {mode: 0o755, uid: 0, gid: 0, mtime: epoch}, 'apk database');
  const file = (rel: string, data: string | Buffer, mode = 0o644) => {
    const real = tree.resolve(rel, 'apk database');
    tree.writeFile(real, Buffer.isBuffer(data) ? data : Buffer.from(data), {mode, uid: 0, gid: 0, mtime: epoch});
  };
  for (const d of ['etc', 'etc/apk', 'etc/apk/keys', 'lib', 'lib/apk', 'lib/apk/db', 'var', 'var/cache', 'var/cache/apk', 'dev']) dir(d);
  // The device nodes `apk add --initdb` makes (as root); creating them needs root, so
  // they exist only in the manifest, for the filesystem builder.
  for (const [name, mode, major, minor] of INITDB_DEVICES) {
    const real = tree.resolve(`dev/${name}`, 'apk database');
    if (!tree.entries.has(real) && !tree.lstat(real)) {
      tree.special(real, 'char', {mode, uid: 0, gid: 0, mtime: epoch, major, minor});
    }
  }
  file('lib/apk/db/installed', formatInstalledDb(installed));
  file('lib/apk/db/scripts.tar', formatScriptsTar(installed, SCRIPT_NAMES));
  file('lib/apk/db/triggers', formatTriggers(installed));
  file('lib/apk/db/lock', '', 0o600);
  file(
    'etc/apk/world',
    [...new Set(opts.world)]
      .sort()
      .map((w) => w + '\n')
      .join(''),
  );
  file('etc/apk/repositories', opts.repositories.map((r) => r + '\n').join(''));
  file('etc/apk/arch', `${opts.arch}\n`);
  for (const [name, pem] of opts.keys) {
    if (name.includes('/') || name.startsWith('.')) throw new PsyError('apk-keys', `key file name '${name}' is not a plain file name`);
    const real = tree.resolve(`etc/apk/keys/${name}`, 'keys');
    if (tree.lstat(real)) continue; // alpine-keys may ship it already
    file(`etc/apk/keys/${name}`, Buffer.isBuffer(pem) ? pem : Buffer.from(pem));
  }
}
