import type {Dirent, Stats} from 'node:fs';
import {copyFile, lstat, readFile, readdir, readlink, stat as statFollow} from 'node:fs/promises';
import {join} from 'node:path';
import {PsyError} from '../errors.js';

/**
 * Reading files of a package-installed root on the build host. Packages hold symlinks
 * (`/lib64 -> /lib`, `/bin/sh -> busybox`, or a hostile `-> /etc/shadow`); the host
 * kernel would resolve an absolute target against the host's `/` and a `..` past the
 * root out of it. Every path here is resolved one component at a time inside the root,
 * as a chroot would: absolute targets start again at the root, `..` stops at it. What
 * is then opened on the host has no symlink left in any component, so it is inside.
 */

/** A path resolved inside a root. */
export interface RootPath {
  /** The real path inside the root, '/'-rooted ('/' for the root itself). */
  readonly path: string;
  /** The same on the build host. */
  readonly host: string;
  /** lstat of the real path (never a symlink). */
  readonly stat: Stats;
  /** The symlinks passed on the way, as real '/'-rooted paths, in the order followed. */
  readonly links: readonly string[];
}

const MAX_LINKS = 40;

/**
 * `path` (absolute or relative, read from the root's '/') resolved inside `root`;
 * undefined when it, or a folder on the way, does not exist (or is not a folder).
 * `what` names the caller for the error of a symlink loop.
 */
export async function resolveInRoot(root: string, path: string, what: string): Promise<RootPath | undefined> {
  const real: string[] = [];
  const links: string[] = [];
  let todo = path.split('/');
  // The root folder itself may be reached through a link of the build host's own.
  const at = (parts: readonly string[]): Promise<Stats> => (parts.length === 0 ? statFollow(root) : lstat(join(root, ...parts)));
  let stat = await at(real);
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      // A chroot's '..' stops at its root.
      real.pop();
      stat = await at(real);
      continue;
    }
    if (!stat.isDirectory()) return undefined;
    const here = [...real, part];
    const st = await lstat(join(root, ...here)).catch(() => undefined);
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      links.push('/' + here.join('/'));
      if (links.length > MAX_LINKS) {
        throw new PsyError('symlink-loop', `${what}: ${path} in the installed root: too many levels of symbolic links (at /${here.join('/')})`);
      }
      const target = await readlink(join(root, ...here));
      if (target.startsWith('/')) real.length = 0;
      stat = await at(real);
      todo = [...target.split('/'), ...todo];
      continue;
    }
    real.push(part);
    stat = st;
  }
  return {path: '/' + real.join('/'), host: join(root, ...real), stat, links};
}

async function regularFile(root: string, path: string, what: string): Promise<RootPath | undefined> {
  const r = await resolveInRoot(root, path, what);
  if (r !== undefined && !r.stat.isFile()) {
    throw new PsyError('not-a-file', `${what}: ${path} in the installed root is a ${kind(r.stat)}, not a regular file`);
  }
  return r;
}

function kind(st: Stats): string {
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'fifo';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'device node';
  if (st.isSocket()) return 'socket';
  return 'special file';
}

/** The bytes of the file at `path` inside `root`; undefined when there is none. */
export async function readFileInRoot(root: string, path: string, what: string): Promise<Buffer | undefined> {
  const r = await regularFile(root, path, what);
  return r === undefined ? undefined : readFile(r.host);
}

/** Copies the file at `path` inside `root` to `dest`; false when there is none. */
export async function copyFileFromRoot(root: string, path: string, dest: string, what: string): Promise<boolean> {
  const r = await regularFile(root, path, what);
  if (r === undefined) return false;
  await copyFile(r.host, dest);
  return true;
}

/**
 * The entries of the folder at `path` inside `root` (their types as lstat sees them:
 * a symlink is a symlink), and the folder's real location; undefined when there is none.
 */
export async function readdirInRoot(root: string, path: string, what: string): Promise<{dir: RootPath; entries: Dirent[]} | undefined> {
  const r = await resolveInRoot(root, path, what);
  if (r === undefined || !r.stat.isDirectory()) return undefined;
  return {dir: r, entries: await readdir(r.host, {withFileTypes: true})};
}
