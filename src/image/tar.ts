import {chmod, link, lstat, mkdir, readFile, readdir, readlink, symlink, writeFile, utimes, lutimes} from 'node:fs/promises';
import {dirname, join, posix} from 'node:path';
import {gunzipSync} from 'node:zlib';
import {PsyError} from '../errors.js';
import {readTar, writeTar as writeTarBytes, writeTarFile, type TarEntryType, type TarWriteEntry} from '../tar/index.js';

/**
 * Image tarballs on top of the one tar module. Writing is for reproducibility: entries
 * are written in the order given (callers sort), owned by root, with one fixed mtime,
 * as plain ustar. Reading unpacks an archive into a folder without root and returns
 * every member's metadata, so ownership and device nodes can be carried on by whoever
 * needs them.
 */

export type TarEntry =
  | {readonly type: 'dir'; readonly path: string; readonly mode: number}
  | {readonly type: 'file'; readonly path: string; readonly mode: number; readonly source: string; readonly size: number}
  | {readonly type: 'data'; readonly path: string; readonly mode: number; readonly data: Uint8Array}
  | {readonly type: 'symlink'; readonly path: string; readonly target: string};

function toWriteEntry(e: TarEntry, mtime: number): TarWriteEntry {
  const owner = {uid: 0, gid: 0, uname: 'root', gname: 'root', mtime};
  switch (e.type) {
    case 'dir':
      return {...owner, type: 'directory', path: e.path.endsWith('/') ? e.path : e.path + '/', mode: e.mode & 0o7777};
    case 'file':
      return {...owner, type: 'file', path: e.path, mode: e.mode & 0o7777, source: {path: e.source, size: e.size}};
    case 'data':
      return {...owner, type: 'file', path: e.path, mode: e.mode & 0o7777, data: e.data};
    case 'symlink':
      return {...owner, type: 'symlink', path: e.path, mode: 0o777, linkTarget: e.target};
  }
}

/** Write entries, in the given order, to a tar file. Every member gets `mtime`. */
export async function writeTar(out: string, entries: readonly TarEntry[], mtime: number): Promise<void> {
  await writeTarFile(
    out,
    entries.map((e) => toWriteEntry(e, mtime)),
    {format: 'ustar', longNames: 'prefix'},
  );
}

/** An archive of in-memory entries (no `file` entries), as writeTar would write it. */
export function tarBytes(entries: readonly TarEntry[], mtime: number): Buffer {
  for (const e of entries) {
    if (e.type === 'file') throw new PsyError('tar-unsupported', `tar: ${e.path}: tarBytes takes data entries only`);
  }
  return writeTarBytes(
    entries.map((e) => toWriteEntry(e, mtime)),
    {format: 'ustar', longNames: 'prefix'},
  );
}

/** Entries for everything under `dir`, sorted by path, modes from the files. */
export async function directoryEntries(dir: string, prefix = ''): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      const abs = join(dir, r);
      const st = await lstat(abs);
      const path = prefix ? posix.join(prefix, r) : r;
      if (st.isDirectory()) {
        entries.push({type: 'dir', path, mode: st.mode & 0o7777});
        await walk(r);
      } else if (st.isSymbolicLink()) {
        entries.push({type: 'symlink', path, target: await readlink(abs)});
      } else if (st.isFile()) {
        entries.push({type: 'file', path, mode: st.mode & 0o7777, source: abs, size: st.size});
      } else {
        throw new PsyError('tar-unsupported', `tar: ${abs} is neither file, folder nor symlink`);
      }
    }
  };
  await walk('');
  return entries;
}

export type TarMemberType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarMember {
  readonly path: string;
  readonly type: TarMemberType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime: number;
  readonly size: number;
  readonly linkTarget: string;
  readonly devMajor: number;
  readonly devMinor: number;
}

const memberType = (t: TarEntryType): TarMemberType => (t === 'directory' ? 'dir' : t);

/** Parse a tar (optionally gzip-compressed) held in memory; calls `onMember` with each member's data. */
export function parseTar(archive: Buffer, what: string, onMember: (m: TarMember, data: Buffer) => void): void {
  const buf = archive[0] === 0x1f && archive[1] === 0x8b ? gunzipSync(archive) : archive;
  for (const e of readTar(buf, {what, code: 'bad-tar'}, {allowMissingEnd: true})) {
    const path = e.path.replace(/^\.\//, '').replace(/\/+$/, '');
    if (path === '' || path === '.') continue;
    if (path.split('/').includes('..') || path.startsWith('/')) {
      throw new PsyError('bad-tar', `${what}: member ${JSON.stringify(path)} escapes the target folder`);
    }
    const type = memberType(e.type);
    const member: TarMember = {
      path,
      type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      mtime: e.mtime,
      size: type === 'file' ? e.size : 0,
      linkTarget: e.linkTarget,
      devMajor: e.devMajor,
      devMinor: e.devMinor,
    };
    onMember(member, e.data);
  }
}

/**
 * Unpack a tar file into `dest` without root: files, folders, symlinks and hard links
 * are created (ownership is not), device nodes and fifos are only reported. Returns
 * every member so callers can reproduce ownership and special files elsewhere.
 */
export async function extractTar(tarPath: string, dest: string): Promise<TarMember[]> {
  const members: TarMember[] = [];
  const datas: Buffer[] = [];
  parseTar(await readFile(tarPath), tarPath, (m, d) => {
    members.push(m);
    datas.push(d);
  });
  await mkdir(dest, {recursive: true});
  const dirs: TarMember[] = [];
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    const abs = join(dest, m.path);
    await mkdir(dirname(abs), {recursive: true});
    switch (m.type) {
      case 'dir':
        await mkdir(abs, {recursive: true});
        dirs.push(m);
        break;
      case 'file':
        await writeFile(abs, datas[i]!, {mode: 0o600});
        await chmod(abs, m.mode);
        await utimes(abs, m.mtime, m.mtime);
        break;
      case 'symlink':
        await symlink(m.linkTarget, abs);
        await lutimes(abs, m.mtime, m.mtime).catch(() => {});
        break;
      case 'hardlink': {
        await link(join(dest, m.linkTarget.replace(/^\.\//, '')), abs);
        break;
      }
      case 'char':
      case 'block':
      case 'fifo':
        break;
    }
  }
  // Folder modes last, deepest first, so a read-only folder does not block its contents.
  for (const m of dirs.reverse()) {
    const abs = join(dest, m.path);
    await chmod(abs, m.mode);
    await utimes(abs, m.mtime, m.mtime);
  }
  return members;
}
