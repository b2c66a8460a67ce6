import {lstat, lutimes, readdir, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {runTool, type ToolRunner} from '../tools/run.js';

/**
 * squashfs with mksquashfs, reproducible and rootless: ownership, modes and device
 * nodes come from a pseudo-definition file (no chown, no mknod), timestamps are fixed.
 */

export type SquashfsCompression = 'zstd' | 'xz' | 'gzip' | 'lz4' | 'lzo';

/** Ownership and mode a path must have in the image (e.g. from a package manifest). */
export interface Ownership {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export interface SpecialFile {
  readonly path: string;
  readonly type: 'char' | 'block';
  readonly major: number;
  readonly minor: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export interface SquashfsOptions {
  readonly epoch: number;
  readonly compression: SquashfsCompression;
  /** Compression level for zstd (1-22) / gzip (1-9); tool default when omitted. */
  readonly level?: number;
  /** Paths (relative, no leading slash) whose owner/mode differ from root + the file's mode. */
  readonly ownership?: ReadonlyMap<string, Ownership>;
  readonly specials?: readonly SpecialFile[];
  /** Extra arguments, e.g. ['-Xbcj', 'x86'] for xz. */
  readonly extraArgs?: readonly string[];
}

function pseudoName(p: string): string {
  if (/[\s"\\]/.test(p)) return `"${p.replace(/(["\\])/g, '\\$1')}"`;
  return p;
}

/**
 * Pseudo definitions giving every path in `dir` an explicit owner and mode: root and
 * the file's own permission bits unless `ownership` says otherwise. Sorted.
 */
export async function pseudoDefinitions(dir: string, ownership?: ReadonlyMap<string, Ownership>, specials: readonly SpecialFile[] = []): Promise<string> {
  const lines: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const n of (await readdir(join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = await lstat(join(dir, r));
      const o = ownership?.get(r);
      // Symlink modes are ignored by mksquashfs, their owner is not.
      const mode = st.isSymbolicLink() ? 0o777 : (o?.mode ?? st.mode) & 0o7777;
      lines.push(`${pseudoName(r)} m ${mode.toString(8).padStart(4, '0')} ${o?.uid ?? 0} ${o?.gid ?? 0}`);
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  for (const s of specials) {
    lines.push(
      `${pseudoName(s.path.replace(/^\/+/, ''))} ${s.type === 'char' ? 'c' : 'b'} ${(s.mode & 0o7777).toString(8)} ${s.uid} ${s.gid} ${s.major} ${s.minor}`,
    );
  }
  return lines.join('\n') + '\n';
}

export async function makeSquashfs(dir: string, out: string, opts: SquashfsOptions, scratch: string, run: ToolRunner = runTool): Promise<void> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new PsyError('missing-input', `squashfs source ${dir} is not a folder`);
  const pseudo = join(scratch, 'squashfs.pseudo');
  await writeFile(pseudo, await pseudoDefinitions(dir, opts.ownership, opts.specials));
  const comp = ['-comp', opts.compression];
  if (opts.level !== undefined) {
    if (opts.compression === 'zstd' || opts.compression === 'gzip') comp.push('-Xcompression-level', String(opts.level));
    else throw new PsyError('bad-setting', `squashfs compression ${opts.compression} takes no level`);
  }
  const root = await lstat(dir);
  const args = [
    dir,
    out,
    '-noappend',
    '-quiet',
    '-no-progress',
    '-no-xattrs',
    '-exit-on-error',
    '-root-mode',
    (root.mode & 0o7777).toString(8).padStart(4, '0'),
    '-root-uid',
    '0',
    '-root-gid',
    '0',
    '-pf',
    pseudo,
    ...comp,
    ...(opts.extraArgs ?? []),
  ];
  // mksquashfs refuses SOURCE_DATE_EPOCH together with -all-time/-mkfs-time, and a build
  // may pass the variable down; so pin every mtime in the tree and let the variable set
  // the filesystem time.
  await pinTimes(dir, opts.epoch);
  await run('mksquashfs', args, {env: {SOURCE_DATE_EPOCH: String(opts.epoch)}, captureStdout: true});
}

/** Set every mtime/atime under `dir` (and of `dir`) to `epoch`; the tree is the caller's scratch copy. */
export async function pinTimes(dir: string, epoch: number): Promise<void> {
  const walk = async (abs: string): Promise<void> => {
    for (const e of await readdir(abs, {withFileTypes: true})) {
      const p = join(abs, e.name);
      if (e.isDirectory()) await walk(p);
      await lutimes(p, epoch, epoch);
    }
  };
  await walk(dir);
  await lutimes(dir, epoch, epoch);
}
