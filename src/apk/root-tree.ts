import {
  chmodSync,
  closeSync,
  fchmodSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readlinkSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
  type Stats,
} from 'node:fs';
import {join, posix} from 'node:path';
import {PsyError} from '../errors.js';
import type {ManifestEntry, ManifestEntryType} from './manifest.js';

/**
 * A root folder written by an unprivileged process. Every path is checked to stay
 * inside the root (no `..`, no absolute paths, no symlinked parent that leads out), and
 * the true ownership and mode of everything written is kept in `entries` for the
 * filesystem builder. Nothing is ever chowned on the host.
 */
export class RootTree {
  readonly root: string;
  readonly entries = new Map<string, ManifestEntry>();
  /** Resolved parent directories: root-relative path → real root-relative path. */
  readonly #dirs = new Map<string, string>([['', '']]);

  constructor(root: string) {
    this.root = root;
  }

  /** Normalises a package path (strips `./` and trailing `/`); refuses escapes. */
  static normalize(path: string, what: string): string {
    if (path.startsWith('/')) throw new PsyError('apk-unsafe-path', `${what}: absolute path '${path}' refused`);
    const parts = path.split('/').filter((s) => s !== '' && s !== '.');
    if (parts.some((s) => s === '..')) throw new PsyError('apk-unsafe-path', `${what}: path '${path}' escapes the root`);
    if (path.includes('\0')) throw new PsyError('apk-unsafe-path', `${what}: path with NUL byte refused`);
    return parts.join('/');
  }

  /**
   * Real root-relative location of `rel` (whose last component is not followed):
   * symlinked parents are followed inside the root; a symlink that leads out is refused.
   */
  resolve(rel: string, what: string): string {
    const slash = rel.lastIndexOf('/');
    if (slash < 0) return rel;
    const dir = this.#resolveDir(rel.slice(0, slash), what, 0);
    const base = rel.slice(slash + 1);
    return dir === '' ? base : `${dir}/${base}`;
  }

  abs(real: string): string {
    return real === '' ? this.root : join(this.root, real);
  }

  #resolveDir(dir: string, what: string, depth: number): string {
    const cached = this.#dirs.get(dir);
    if (cached !== undefined) return cached;
    if (depth > 40) throw new PsyError('apk-unsafe-path', `${what}: too many levels of symlinks at '${dir}'`);
    const slash = dir.lastIndexOf('/');
    const parent = slash < 0 ? '' : this.#resolveDir(dir.slice(0, slash), what, depth);
    const base = slash < 0 ? dir : dir.slice(slash + 1);
    const here = parent === '' ? base : `${parent}/${base}`;
    let st: Stats | undefined;
    try {
      st = lstatSync(this.abs(here));
    } catch {
      st = undefined;
    }
    let real: string;
    if (!st) {
      // A missing parent is created as root:root 0755, as apk does.
      mkdirSync(this.abs(here), {mode: 0o755});
      this.record({path: here, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0, onDisk: true});
      real = here;
    } else if (st.isDirectory()) {
      real = here;
    } else if (st.isSymbolicLink()) {
      const target = readlinkSync(this.abs(here));
      const joined = target.startsWith('/') ? posix.normalize(target.slice(1)) : posix.normalize(posix.join(parent, target));
      if (joined === '..' || joined.startsWith('../') || joined.startsWith('/')) {
        throw new PsyError('apk-unsafe-path', `${what}: '${dir}' is a symlink to '${target}', which leads out of the root`);
      }
      real = this.#resolveDir(joined === '.' ? '' : joined.replace(/\/$/, ''), what, depth + 1);
    } else {
      throw new PsyError('apk-unsafe-path', `${what}: '${dir}' is not a directory`);
    }
    this.#dirs.set(dir, real);
    return real;
  }

  lstat(real: string): Stats | undefined {
    try {
      return lstatSync(this.abs(real));
    } catch {
      return undefined;
    }
  }

  record(e: ManifestEntry): void {
    this.entries.set(e.path, e);
  }

  /** Removes whatever non-directory is at `real` (overwrites replace, never follow). */
  removeNonDir(real: string): void {
    const st = this.lstat(real);
    if (!st) return;
    if (st.isDirectory()) throw new PsyError('apk-file-conflict', `'${real}' is a directory and cannot be replaced`);
    unlinkSync(this.abs(real));
    if (st.isSymbolicLink()) {
      // a replaced symlink may have been a directory on the way to other paths
      this.#dirs.clear();
      this.#dirs.set('', '');
    }
  }

  writeFile(real: string, data: Buffer, e: Omit<ManifestEntry, 'path' | 'type' | 'onDisk'>): void {
    this.removeNonDir(real);
    const fd = openSync(this.abs(real), 'wx', diskMode('file', e.mode));
    try {
      if (data.length) writeSync(fd, data);
      fchmodSync(fd, diskMode('file', e.mode));
    } finally {
      closeSync(fd);
    }
    this.record({path: real, type: 'file', onDisk: true, ...e});
  }

  mkdir(real: string, e: Omit<ManifestEntry, 'path' | 'type' | 'onDisk'>, what = 'install'): void {
    const st = this.lstat(real);
    if (st?.isDirectory()) {
      if (!this.entries.has(real)) this.record({path: real, type: 'directory', onDisk: true, ...e});
      return;
    }
    if (st) throw new PsyError('apk-file-conflict', `${what}: directory '${real}' would replace a file or link installed before`);
    mkdirSync(this.abs(real), {mode: diskMode('directory', e.mode)});
    // mkdir's mode passes through the umask; sticky and group/other write need a chmod.
    if (diskMode('directory', e.mode) & 0o7022) chmodSync(this.abs(real), diskMode('directory', e.mode));
    this.record({path: real, type: 'directory', onDisk: true, ...e});
  }

  /**
   * A directory at root-relative `rel`: created, or kept when present; a symlink to a
   * directory inside the root is accepted as apk does (usr-merge layouts).
   */
  ensureDir(rel: string, e: Omit<ManifestEntry, 'path' | 'type' | 'onDisk'>, what: string): void {
    const real = this.resolve(rel, what);
    if (this.lstat(real)?.isSymbolicLink()) {
      this.resolve(`${rel}/x`, what); // checks the link stays inside the root
      return;
    }
    this.mkdir(real, e, what);
  }

  symlink(real: string, target: string, e: Omit<ManifestEntry, 'path' | 'type' | 'onDisk' | 'mode'>): void {
    this.removeNonDir(real);
    symlinkSync(target, this.abs(real));
    this.record({path: real, type: 'symlink', mode: 0o777, target, onDisk: true, ...e});
  }

  hardlink(real: string, targetReal: string, e: Omit<ManifestEntry, 'path' | 'type' | 'onDisk'>): void {
    const st = this.lstat(targetReal);
    if (!st || !st.isFile()) {
      throw new PsyError('apk-unsafe-path', `hardlink '${real}' points to '${targetReal}', which is not a file in the root`);
    }
    this.removeNonDir(real);
    linkSync(this.abs(targetReal), this.abs(real));
    this.record({path: real, type: 'hardlink', target: targetReal, onDisk: true, ...e});
  }

  /** A device node or fifo: recorded only (creating it needs root). */
  special(real: string, type: Extract<ManifestEntryType, 'char' | 'block' | 'fifo'>, e: Omit<ManifestEntry, 'path' | 'type' | 'onDisk'>): void {
    this.record({path: real, type, onDisk: false, ...e});
  }

  /** Applies recorded mtimes on disk (directories last, as writing inside changes them). */
  applyTimes(): void {
    const dirs: ManifestEntry[] = [];
    for (const e of this.entries.values()) {
      if (!e.onDisk) continue;
      if (e.type === 'directory') dirs.push(e);
      else if (e.type === 'symlink') lutimesSync(this.abs(e.path), e.mtime, e.mtime);
      else utimesSync(this.abs(e.path), e.mtime, e.mtime);
    }
    for (const d of dirs) utimesSync(this.abs(d.path), d.mtime, d.mtime);
  }
}

/** Mode used on disk: the real bits, widened so the unprivileged owner can read and replace. */
export function diskMode(type: 'file' | 'directory', mode: number): number {
  return mode | (type === 'directory' ? 0o700 : 0o600);
}
