import {mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {extractTar} from '../image/tar.js';
import {copyDirToFat, formatFat} from './fat.js';
import {makeExt4} from './ext4.js';
import {createGptImage, deriveUuid, findPartition, type Partition, type PartitionSpec} from './gpt.js';
import {runTool, type ToolRunner} from '../tools/run.js';

/**
 * Disk images as a whole: create one from a layout with filesystems and content, or
 * replace the content of one partition inside an existing image. No root, no loop
 * devices, no mounts; the result is sparse and the same inputs give the same bytes.
 */

export type FilesystemKind = 'fat32' | 'ext4';

/** What to put in a filesystem: a folder's content, or a tar's (plain or gzip). */
export type PartitionContent = {readonly dir: string} | {readonly tar: string};

export interface FilesystemSpec extends PartitionSpec {
  readonly fs: FilesystemKind;
  /** Filesystem label; the GPT name when omitted. */
  readonly label?: string;
  readonly content?: PartitionContent;
}

export interface DiskImageSpec {
  /** Seed for the partition table's and filesystems' identifiers. */
  readonly seed: string;
  /** Timestamp for everything written (SOURCE_DATE_EPOCH). */
  readonly epoch: number;
  readonly partitions: readonly FilesystemSpec[];
}

export interface FilesystemWrite {
  readonly fs: FilesystemKind;
  readonly label?: string;
  readonly content?: PartitionContent;
  readonly epoch: number;
  /** Seed for the filesystem's identifiers; the partition's GUID when omitted. */
  readonly seed?: string;
}

/** Create the image with its partition table, filesystems and content. */
export async function buildDiskImage(path: string, spec: DiskImageSpec, run: ToolRunner = runTool): Promise<Partition[]> {
  const parts = await createGptImage(path, {seed: spec.seed, partitions: spec.partitions}, run);
  // Each filesystem lives in its own byte range of the file, so they are written at once.
  // All writers settle before a failure is reported, so none is still writing (to the
  // image or its scratch folders) when the caller cleans up; the half-built image goes.
  const results = await Promise.allSettled(
    spec.partitions.map((p, i) =>
      writeFilesystem(path, parts[i]!, {fs: p.fs, label: p.label ?? p.name, content: p.content, epoch: spec.epoch, seed: spec.seed}, run),
    ),
  );
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    await rm(path, {force: true});
    throw failure.reason;
  }
  return parts;
}

/**
 * Format the partition named `name` in an existing image and fill it: the partition's
 * previous content is replaced as a whole.
 */
export async function writePartition(image: string, name: string, w: FilesystemWrite, run: ToolRunner = runTool): Promise<Partition> {
  const part = await findPartition(image, name, run);
  await writeFilesystem(image, part, w, run);
  return part;
}

async function writeFilesystem(image: string, part: Partition, w: FilesystemWrite, run: ToolRunner): Promise<void> {
  const label = w.label ?? part.name;
  const seed = w.seed ?? part.uuid;
  let tmp: string | undefined;
  try {
    let dir: string | undefined;
    if (w.content && 'tar' in w.content) {
      tmp = await mkdtemp(join(tmpdir(), 'psy-partition-'));
      dir = join(tmp, 'content');
      const members = await extractTar(w.content.tar, dir);
      const special = members.find((m) => m.type === 'char' || m.type === 'block' || m.type === 'fifo');
      if (special)
        throw new PsyError('tar-unsupported', `${w.content.tar}: ${special.path} is a device node; partitions hold only files, folders and symlinks`);
    } else if (w.content) {
      dir = w.content.dir;
    }
    switch (w.fs) {
      case 'fat32':
        await formatFat(image, part, {label, volumeId: deriveUuid(seed, `fat:${label}`).slice(0, 8), epoch: w.epoch}, run);
        if (dir) await copyDirToFat(image, part, dir, w.epoch, run);
        break;
      case 'ext4':
        await makeExt4(image, part, {label, uuid: deriveUuid(seed, `ext4:${label}`), hashSeed: deriveUuid(seed, `hash:${label}`), epoch: w.epoch}, dir, run);
        break;
      default: {
        const never: never = w.fs;
        throw new PsyError('bad-layout', `unknown filesystem ${String(never)}`);
      }
    }
  } finally {
    if (tmp) await rm(tmp, {recursive: true, force: true});
  }
}
