import {readFileSync} from 'node:fs';
import {PsyError} from '../errors.js';
import {RootTree} from './root-tree.js';

/**
 * Install scripts are never run (they would need the target's /bin/sh and root). What
 * they do that a root filesystem needs is reproduced here instead, as Alpine's own
 * genrootfs and apko do.
 */

export interface GroupSpec {
  readonly name: string;
  readonly gid: number;
  readonly members?: readonly string[];
}

export interface UserSpec {
  readonly name: string;
  readonly uid: number;
  /** Primary group (name); created with gid = uid when missing. Defaults to the user name. */
  readonly group?: string;
  readonly groups?: readonly string[];
  readonly home?: string;
  readonly shell?: string;
  readonly gecos?: string;
  /** Hashed password for /etc/shadow; default `!` (locked). */
  readonly passwordHash?: string;
}

export interface AccountsSpec {
  readonly groups?: readonly GroupSpec[];
  readonly users?: readonly UserSpec[];
}

/** Which skipped scripts have their effects reproduced, and how. */
export const REPRODUCED: Readonly<Record<string, string>> = {
  'busybox.post-install': 'busybox applet links from etc/busybox-paths.d (klogd account not created, as in Alpine images)',
  'busybox.trigger': 'busybox applet links from etc/busybox-paths.d',
  'alpine-baselayout.pre-install': 'group shadow (gid 42)',
  'alpine-baselayout.post-install': 'etc/shadow owned root:shadow, mode 0640',
};

/** Symlinks `/bin/busybox` for every applet path in etc/busybox-paths.d/* not already present. */
export function installBusyboxLinks(tree: RootTree, mtime: number): number {
  const listDir = tree.resolve('etc/busybox-paths.d', 'busybox links');
  const dirSt = tree.lstat(listDir);
  if (!dirSt?.isDirectory()) return 0;
  let made = 0;
  const lists = [...tree.entries.values()]
    .filter((e) => e.path.startsWith(listDir + '/') && e.type === 'file')
    .map((e) => e.path)
    .sort();
  for (const list of lists) {
    const text = readFileSync(tree.abs(list), 'utf8');
    for (const line of text.split('\n')) {
      const p = line.trim();
      if (!p || p.startsWith('#')) continue;
      const rel = RootTree.normalize(p.replace(/^\/+/, ''), 'etc/busybox-paths.d');
      const real = tree.resolve(rel, `busybox link ${p}`);
      if (tree.lstat(real)) continue;
      tree.symlink(real, '/bin/busybox', {uid: 0, gid: 0, mtime});
      made++;
    }
  }
  return made;
}

interface AccountFiles {
  passwd: string[];
  group: string[];
  shadow: string[] | undefined;
}

function readLines(tree: RootTree, rel: string): string[] | undefined {
  const real = tree.resolve(rel, rel);
  const st = tree.lstat(real);
  if (!st?.isFile()) return undefined;
  return readFileSync(tree.abs(real), 'utf8')
    .split('\n')
    .filter((l) => l !== '');
}

function writeLines(tree: RootTree, rel: string, lines: string[], fallback: {mode: number; gid: number}, mtime: number): void {
  const real = tree.resolve(rel, rel);
  const prev = tree.entries.get(real);
  tree.writeFile(real, Buffer.from(lines.join('\n') + '\n'), {
    mode: prev?.mode ?? fallback.mode,
    uid: prev?.uid ?? 0,
    gid: prev?.gid ?? fallback.gid,
    mtime: prev?.mtime ?? mtime,
  });
}

/** Adds groups and users (passwd, group, shadow), creating homes owned by the user. */
export function applyAccounts(tree: RootTree, spec: AccountsSpec, mtime: number): void {
  const files: AccountFiles = {
    passwd: readLines(tree, 'etc/passwd') ?? [],
    group: readLines(tree, 'etc/group') ?? [],
    shadow: readLines(tree, 'etc/shadow'),
  };
  const groupByName = (n: string) => files.group.findIndex((l) => l.split(':')[0] === n);
  const addGroup = (g: GroupSpec) => {
    if (groupByName(g.name) >= 0) return;
    if (files.group.some((l) => l.split(':')[2] === String(g.gid))) {
      throw new PsyError('apk-accounts', `group ${g.name}: gid ${g.gid} is already taken in etc/group`);
    }
    files.group.push(`${g.name}:x:${g.gid}:${(g.members ?? []).join(',')}`);
  };
  for (const g of spec.groups ?? []) addGroup(g);
  for (const u of spec.users ?? []) {
    if (files.passwd.some((l) => l.split(':')[0] === u.name)) {
      throw new PsyError('apk-accounts', `user ${u.name} already exists in etc/passwd`);
    }
    if (files.passwd.some((l) => l.split(':')[2] === String(u.uid))) {
      throw new PsyError('apk-accounts', `user ${u.name}: uid ${u.uid} is already taken in etc/passwd`);
    }
    const primary = u.group ?? u.name;
    if (groupByName(primary) < 0) addGroup({name: primary, gid: u.uid});
    const gid = Number(files.group[groupByName(primary)]!.split(':')[2]);
    const home = u.home ?? `/home/${u.name}`;
    files.passwd.push(`${u.name}:x:${u.uid}:${gid}:${u.gecos ?? ''}:${home}:${u.shell ?? '/bin/sh'}`);
    files.shadow?.push(`${u.name}:${u.passwordHash ?? '!'}:0:0:99999:7:::`);
    for (const extra of u.groups ?? []) {
      const i = groupByName(extra);
      if (i < 0) throw new PsyError('apk-accounts', `user ${u.name}: supplementary group ${extra} does not exist`);
      const parts = files.group[i]!.split(':');
      const members = (parts[3] ?? '').split(',').filter(Boolean);
      if (!members.includes(u.name)) members.push(u.name);
      parts[3] = members.join(',');
      files.group[i] = parts.join(':');
    }
    const homeRel = home.replace(/^\/+/, '');
    if (homeRel && home !== '/dev/null') {
      const real = tree.resolve(homeRel, `home of ${u.name}`);
      tree.mkdir(real, {mode: 0o700, uid: u.uid, gid, mtime});
      tree.record({...tree.entries.get(real)!, mode: 0o700, uid: u.uid, gid});
    }
  }
  writeLines(tree, 'etc/passwd', files.passwd, {mode: 0o644, gid: 0}, mtime);
  writeLines(tree, 'etc/group', files.group, {mode: 0o644, gid: 0}, mtime);
  if (files.shadow) writeLines(tree, 'etc/shadow', files.shadow, {mode: 0o640, gid: 42}, mtime);
}

/** alpine-baselayout's scripts: group shadow (gid 42), etc/shadow root:shadow 0640. */
export function applyBaselayoutEffects(tree: RootTree, mtime: number): void {
  const group = readLines(tree, 'etc/group');
  if (group && !group.some((l) => l.startsWith('shadow:'))) applyAccounts(tree, {groups: [{name: 'shadow', gid: 42}]}, mtime);
  const real = tree.resolve('etc/shadow', 'etc/shadow');
  const e = tree.entries.get(real);
  if (e && e.type === 'file') tree.record({...e, uid: 0, gid: 42, mode: 0o640});
}

/**
 * Alpine's image builder (aports scripts/genrootfs.sh) locks root's empty password
 * (`root::` → `root:*:`), so an image never allows a passwordless root login.
 * Returns whether anything changed.
 */
export function lockEmptyRootPassword(tree: RootTree, mtime: number): boolean {
  const lines = readLines(tree, 'etc/shadow');
  if (!lines) return false;
  const i = lines.findIndex((l) => l.startsWith('root::'));
  if (i < 0) return false;
  lines[i] = 'root:*:' + lines[i]!.slice('root::'.length);
  writeLines(tree, 'etc/shadow', lines, {mode: 0o640, gid: 42}, mtime);
  return true;
}
