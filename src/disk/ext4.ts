import {lstat, mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {directoryEntries} from '../image/tar.js';
import type {Partition} from './gpt.js';
import {runTool, type ToolRunner} from '../tools/run.js';

/**
 * ext4 inside an image file, without mounting or root: `mke2fs -d` at a byte offset
 * fills the filesystem from a folder, debugfs (`image?offset=N`) pins what mke2fs copies
 * from the host (ctime, owner) and reads files back.
 */

export interface Ext4Options {
  readonly label: string;
  /** Filesystem UUID; fixed for reproducible images. */
  readonly uuid: string;
  /** Directory-hash seed (a UUID); fixed for reproducible images. */
  readonly hashSeed: string;
  /** Every timestamp in the filesystem (SOURCE_DATE_EPOCH). */
  readonly epoch: number;
}

function device(image: string, part: Partition): string {
  return `${image}?offset=${part.offset}`;
}

function quote(p: string): string {
  if (/["\n]/.test(p)) throw new PsyError('bad-path', `cannot place ${JSON.stringify(p)} in ext4: quotes and newlines are not supported`);
  return `"${p}"`;
}

/**
 * Make an ext4 filesystem in the partition, filled from `sourceDir` when given.
 * Everything inside is owned by root and stamped with the epoch.
 */
export async function makeExt4(image: string, part: Partition, opts: Ext4Options, sourceDir?: string, run: ToolRunner = runTool): Promise<void> {
  const entries = sourceDir ? await directoryEntries(sourceDir) : [];
  if (sourceDir) {
    let bytes = 0;
    for (const e of entries) bytes += e.type === 'file' ? Math.ceil(e.size / 4096) * 4096 + 256 : 4096;
    // ext4 metadata (journal, inode tables, group descriptors) takes a few percent.
    const usable = part.size * 0.9 - 4 * 1024 * 1024;
    if (bytes > usable) {
      throw new PsyError(
        'partition-too-small',
        `content of ${sourceDir} (${(bytes / 1048576).toFixed(1)} MiB) does not fit partition ${part.name} (${(part.size / 1048576).toFixed(0)} MiB); make the partition bigger`,
      );
    }
  }
  const args = [
    '-q',
    '-F',
    '-t',
    'ext4',
    '-b',
    '4096',
    '-L',
    opts.label,
    '-U',
    opts.uuid,
    '-E',
    `offset=${part.offset},nodiscard,root_owner=0:0,hash_seed=${opts.hashSeed}`,
  ];
  if (sourceDir) args.push('-d', sourceDir);
  args.push(image, `${part.size / 1024}k`);
  try {
    await run('mke2fs', args, {env: {E2FSPROGS_FAKE_TIME: String(opts.epoch)}, captureStdout: true});
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/allocate|No space|too many/i.test(msg)) {
      throw new PsyError(
        'partition-too-small',
        `content of ${sourceDir} does not fit partition ${part.name} (${(part.size / 1048576).toFixed(0)} MiB): ${msg}`,
      );
    }
    throw err;
  }
  // mke2fs -d copies each file's ctime (which touch cannot set) and owner from the host.
  const cmds: string[] = [];
  const paths = ['/', '/lost+found', ...entries.map((e) => '/' + e.path)];
  for (const p of paths) {
    const q = quote(p);
    for (const f of ['atime', 'mtime', 'ctime', 'crtime']) cmds.push(`sif ${q} ${f} @${opts.epoch}`);
    cmds.push(`sif ${q} uid 0`, `sif ${q} gid 0`);
  }
  await runDebugfs(image, part, cmds, true, run);
}

async function runDebugfs(image: string, part: Partition, cmds: readonly string[], write: boolean, run: ToolRunner): Promise<string> {
  const tmp = await mkdtemp(join(tmpdir(), 'psy-debugfs-'));
  try {
    const file = join(tmp, 'cmds');
    await writeFile(file, cmds.join('\n') + '\n');
    const {stdout, stderr} = await run('debugfs', [...(write ? ['-w'] : []), '-f', file, device(image, part)], {captureStdout: true, captureStderr: true});
    const errLines = stderr
      .toString()
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('debugfs '));
    if (errLines.length) throw new PsyError('debugfs-failed', `debugfs on ${part.name} in ${image}: ${errLines.slice(0, 3).join(' | ')}`);
    return stdout.toString();
  } finally {
    await rm(tmp, {recursive: true, force: true});
  }
}

/** Read one file from the ext4 filesystem. */
export async function readExt4File(image: string, part: Partition, path: string, run: ToolRunner = runTool): Promise<Buffer> {
  const {stdout, stderr} = await run('debugfs', ['-R', `cat ${quote(path)}`, device(image, part)], {captureStdout: true, captureStderr: true});
  if (/not found|File not found|Bad magic|no such/i.test(stderr.toString())) {
    throw new PsyError('no-such-file', `${image}: no file ${path} in the ext4 partition ${part.name}`);
  }
  return stdout;
}

export interface Ext4Entry {
  readonly path: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
}

/** Entries of one ext4 folder (without . and ..). */
export async function listExt4(image: string, part: Partition, dir = '/', run: ToolRunner = runTool): Promise<Ext4Entry[]> {
  const out = await runDebugfs(image, part, [`ls -p ${quote(dir)}`], false, run);
  const res: Ext4Entry[] = [];
  for (const line of out.split('\n')) {
    // /ino/mode/uid/gid/name/size/
    const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line.trim());
    if (!m || m[5] === '.' || m[5] === '..') continue;
    res.push({path: m[5]!, mode: parseInt(m[2]!, 8), uid: Number(m[3]), gid: Number(m[4]), size: Number(m[6] || 0)});
  }
  return res.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The filesystem label and UUID, read back with debugfs. */
export async function ext4Identity(image: string, part: Partition, run: ToolRunner = runTool): Promise<{label: string; uuid: string}> {
  const out = await runDebugfs(image, part, ['stats -h'], false, run);
  const label = /Filesystem volume name:\s*(.*)/.exec(out)?.[1]?.trim() ?? '';
  const uuid = /Filesystem UUID:\s*(\S+)/.exec(out)?.[1] ?? '';
  return {label: label === '<none>' ? '' : label, uuid};
}

export async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isDirectory();
  } catch {
    return false;
  }
}
