import {lstat, readFile, readdir, readlink} from 'node:fs/promises';
import {join} from 'node:path';
import {gzipSync} from 'node:zlib';
import {PsyError} from '../errors.js';
import {runTool, type ToolRunner} from '../tools/run.js';

/**
 * An in-process cpio "newc" writer, as the kernel unpacks an initramfs. Because the
 * archive is written here, device nodes (/dev/console) need no root, every member is
 * owned by root unless told otherwise, and everything carries one fixed mtime.
 */

export type CpioEntry =
  | {readonly type: 'dir'; readonly path: string; readonly mode: number}
  | {readonly type: 'file'; readonly path: string; readonly mode: number; readonly data: Uint8Array}
  | {readonly type: 'symlink'; readonly path: string; readonly target: string}
  | {readonly type: 'char' | 'block'; readonly path: string; readonly mode: number; readonly major: number; readonly minor: number};

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function member(ino: number, mode: number, nlink: number, mtime: number, data: Uint8Array, rmajor: number, rminor: number, name: string): Buffer[] {
  const nameBytes = Buffer.from(name + '\0');
  const header =
    '070701' +
    hex8(ino) +
    hex8(mode) +
    hex8(0) +
    hex8(0) +
    hex8(nlink) +
    hex8(mtime) +
    hex8(data.length) +
    hex8(0) +
    hex8(0) +
    hex8(rmajor) +
    hex8(rminor) +
    hex8(nameBytes.length) +
    hex8(0);
  const head = Buffer.concat([Buffer.from(header, 'ascii'), nameBytes]);
  return [head, Buffer.alloc(pad4(head.length)), Buffer.from(data), Buffer.alloc(pad4(data.length))];
}

/** The uncompressed archive: entries sorted by path, parents implied by the caller. */
export function cpioArchive(entries: readonly CpioEntry[], mtime: number): Buffer {
  const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const seen = new Set<string>();
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of sorted) {
    const path = e.path.replace(/^\/+/, '');
    if (seen.has(path)) throw new PsyError('cpio-duplicate', `initramfs: ${path} added twice`);
    seen.add(path);
    switch (e.type) {
      case 'dir':
        parts.push(...member(ino++, S_IFDIR | (e.mode & 0o7777), 2, mtime, new Uint8Array(), 0, 0, path));
        break;
      case 'file':
        parts.push(...member(ino++, S_IFREG | (e.mode & 0o7777), 1, mtime, e.data, 0, 0, path));
        break;
      case 'symlink':
        parts.push(...member(ino++, S_IFLNK | 0o777, 1, mtime, Buffer.from(e.target), 0, 0, path));
        break;
      case 'char':
      case 'block':
        parts.push(...member(ino++, (e.type === 'char' ? S_IFCHR : S_IFBLK) | (e.mode & 0o7777), 1, mtime, new Uint8Array(), e.major, e.minor, path));
        break;
    }
  }
  parts.push(...member(0, 0, 1, 0, new Uint8Array(), 0, 0, 'TRAILER!!!'));
  const out = Buffer.concat(parts);
  // The kernel reads the archive in 512-byte blocks; pad like cpio does.
  return Buffer.concat([out, Buffer.alloc((512 - (out.length % 512)) % 512)]);
}

/** Read a folder (sorted) into cpio entries under `prefix`. */
export async function cpioEntriesFromDir(dir: string, prefix = ''): Promise<CpioEntry[]> {
  const out: CpioEntry[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const n of (await readdir(join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const abs = join(dir, r);
      const path = prefix ? `${prefix}/${r}` : r;
      const st = await lstat(abs);
      if (st.isDirectory()) {
        out.push({type: 'dir', path, mode: st.mode});
        await walk(r);
      } else if (st.isSymbolicLink()) out.push({type: 'symlink', path, target: await readlink(abs)});
      else if (st.isFile()) out.push({type: 'file', path, mode: st.mode, data: await readFile(abs)});
    }
  };
  await walk('');
  return out;
}

export type Compression = 'gzip' | 'zstd' | 'xz' | 'none';

/**
 * Compress with a deterministic setting (no names or times in the headers). Levels are
 * the tools' defaults: the top levels cost 5-10x the time for under 1% (gzip) or ~20%
 * (zstd) of size on an initramfs that is mostly kernel modules.
 */
export async function compress(data: Buffer, how: Compression, run: ToolRunner = runTool): Promise<Buffer> {
  switch (how) {
    case 'none':
      return data;
    case 'gzip':
      return gzipSync(data, {level: 6});
    case 'zstd':
      return (await run('zstd', ['-q', '-3', '-T1', '-c'], {input: data, captureStdout: true})).stdout;
    case 'xz':
      // The kernel's xz decoder wants CRC32 checks.
      return (await run('xz', ['-q', '-c', '-T1', '--check=crc32', '-6'], {input: data, captureStdout: true})).stdout;
    default: {
      const never: never = how;
      throw new PsyError('bad-setting', `unknown compression ${String(never)}`);
    }
  }
}
