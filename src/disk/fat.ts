import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {directoryEntries} from '../image/tar.js';
import type {Partition} from './gpt.js';
import {runTool, type ToolRunner} from '../tools/run.js';

/**
 * FAT32 inside an image file, without mounting: mkfs.vfat --offset formats the
 * partition, mtools (`-i image@@byteoffset`) reads and writes files in it.
 */

export interface FatOptions {
  /** Volume label, at most 11 characters. */
  readonly label: string;
  /** Volume serial as 8 hex digits; fixed for reproducible images. */
  readonly volumeId: string;
  /** Timestamp mtools gives new files and folders (SOURCE_DATE_EPOCH). */
  readonly epoch: number;
}

function mtoolsEnv(epoch: number): Record<string, string> {
  return {MTOOLS_SKIP_CHECK: '1', SOURCE_DATE_EPOCH: String(epoch)};
}

function drive(image: string, part: Partition): string {
  return `${image}@@${part.offset}`;
}

export async function formatFat(image: string, part: Partition, opts: FatOptions, run: ToolRunner = runTool): Promise<void> {
  if (opts.label.length > 11) throw new PsyError('bad-label', `FAT label ${opts.label} is longer than 11 characters`);
  if (!/^[0-9a-fA-F]{8}$/.test(opts.volumeId)) throw new PsyError('bad-label', `FAT volume id ${opts.volumeId} is not 8 hex digits`);
  // mkfs.fat picks the cluster size from the whole image file, not the partition, and
  // can end below FAT32's 65525-cluster minimum; choose it from the partition instead.
  const sectors = part.size / 512;
  if (sectors < 66600) throw new PsyError('partition-too-small', `FAT32 partition ${part.name} must be at least 33 MiB`);
  let perCluster = 1;
  while (perCluster < 8 && sectors / (perCluster * 2) >= 66600) perCluster *= 2;
  // --invariant must come before -i, or it resets the serial to 1234-ABCD.
  await run(
    'mkfs.vfat',
    [
      '-F',
      '32',
      '-S',
      '512',
      '-s',
      String(perCluster),
      '-n',
      opts.label,
      '--invariant',
      '-i',
      opts.volumeId,
      '--offset',
      String(part.startSector),
      image,
      String(part.size / 1024),
    ],
    // Its stderr says only that the file is bigger than this partition, which is the point of --offset.
    {env: {SOURCE_DATE_EPOCH: String(opts.epoch)}, captureStdout: true, captureStderr: true},
  );
}

/**
 * Copy a folder's content into the FAT filesystem, in sorted order so the directory
 * entries are the same every time. Symlinks are refused (FAT has none).
 */
export async function copyDirToFat(image: string, part: Partition, dir: string, epoch: number, run: ToolRunner = runTool): Promise<void> {
  const entries = await directoryEntries(dir);
  const env = mtoolsEnv(epoch);
  const d = drive(image, part);
  const dirs = entries.filter((e) => e.type === 'dir').map((e) => `::/${e.path}`);
  if (dirs.length) await run('mmd', ['-i', d, ...dirs], {env, captureStdout: true});
  const byDir = new Map<string, string[]>();
  for (const e of entries) {
    if (e.type === 'symlink') throw new PsyError('fat-symlink', `${dir}/${e.path} is a symlink; FAT cannot hold symlinks`);
    if (e.type !== 'file') continue;
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    const list = byDir.get(parent) ?? [];
    list.push(e.source);
    byDir.set(parent, list);
  }
  for (const [parent, files] of byDir) {
    await run('mcopy', ['-i', d, '-o', ...files, `::/${parent}${parent ? '/' : ''}`], {env, captureStdout: true});
  }
}

/** Write (create or replace) one file in the FAT filesystem; parent folders must exist. */
export async function writeFatFile(
  image: string,
  part: Partition,
  path: string,
  data: Uint8Array | string,
  epoch: number,
  run: ToolRunner = runTool,
): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'psy-fat-'));
  try {
    const src = join(tmp, 'data');
    await writeFile(src, data);
    await run('mcopy', ['-i', drive(image, part), '-o', src, `::${path.startsWith('/') ? path : '/' + path}`], {
      env: mtoolsEnv(epoch),
      captureStdout: true,
    });
  } finally {
    await rm(tmp, {recursive: true, force: true});
  }
}

/** Make folders (parents first) in the FAT filesystem; existing ones are kept. */
export async function makeFatDirs(image: string, part: Partition, paths: readonly string[], epoch: number, run: ToolRunner = runTool): Promise<void> {
  const have = new Set(await listFat(image, part, run));
  const want: string[] = [];
  for (const p of paths) {
    const parts = p.replace(/^\/+/, '').split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      if (!have.has(sub) && !want.includes(sub)) want.push(sub);
    }
  }
  if (want.length) await run('mmd', ['-i', drive(image, part), ...want.map((w) => `::/${w}`)], {env: mtoolsEnv(epoch), captureStdout: true});
}

/** Read one file from the FAT filesystem. */
export async function readFatFile(image: string, part: Partition, path: string, run: ToolRunner = runTool): Promise<Buffer> {
  const p = path.startsWith('/') ? path : '/' + path;
  try {
    const {stdout} = await run('mcopy', ['-i', drive(image, part), `::${p}`, '-'], {env: mtoolsEnv(0), captureStdout: true});
    return stdout;
  } catch (err) {
    if ((err as {code?: string}).code === 'missing-tool') throw err;
    throw new PsyError('no-such-file', `${image}: no file ${p} in the FAT partition ${part.name}`);
  }
}

/** Every path in the FAT filesystem (folders and files, no leading slash), sorted. */
export async function listFat(image: string, part: Partition, run: ToolRunner = runTool): Promise<string[]> {
  const {stdout} = await run('mdir', ['-i', drive(image, part), '-/', '-b', '::/'], {env: mtoolsEnv(0), captureStdout: true});
  return stdout
    .toString()
    .split('\n')
    .map((l) => l.trim().replace(/^::\//, '').replace(/\/$/, ''))
    .filter((l) => l !== '')
    .sort();
}
