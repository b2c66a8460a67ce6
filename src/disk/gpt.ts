import {createHash} from 'node:crypto';
import {open} from 'node:fs/promises';
import {PsyError} from '../errors.js';
import {runTool, type ToolRunner} from '../tools/run.js';

export const SECTOR = 512;
const MiB = 1024 * 1024;

/** GPT type GUIDs by the kind of partition. */
export type PartitionKind = 'esp' | 'linux';
const typeGuid: Record<PartitionKind, string> = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
};

export interface PartitionSpec {
  /** GPT partition name; psyopsOS uses the filesystem label. */
  readonly name: string;
  readonly kind: PartitionKind;
  readonly sizeMiB: number;
  /** Fixed partition GUID; derived from the disk seed and the name when omitted. */
  readonly uuid?: string;
}

export interface DiskLayout {
  /** Seed for every GUID that is not given, so the same layout gives the same bytes. */
  readonly seed: string;
  /** Fixed disk GUID; derived from the seed when omitted. */
  readonly diskId?: string;
  readonly partitions: readonly PartitionSpec[];
}

/** A partition as found in an image file. */
export interface Partition {
  /** 1-based partition number. */
  readonly number: number;
  readonly name: string;
  readonly typeGuid: string;
  readonly uuid: string;
  readonly startSector: number;
  readonly sectors: number;
  readonly offset: number;
  readonly size: number;
}

/** A stable GUID-shaped value from a seed and a purpose (variant/version bits set). */
export function deriveUuid(seed: string, purpose: string): string {
  const h = createHash('sha256').update(`${seed}\0${purpose}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex').toUpperCase();
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** 1 MiB before the first partition (alignment, GPT) and 1 MiB after (backup GPT). */
export function imageSizeBytes(layout: DiskLayout): number {
  return (2 + layout.partitions.reduce((n, p) => n + p.sizeMiB, 0)) * MiB;
}

export function sfdiskScript(layout: DiskLayout): string {
  const lines = ['label: gpt', `label-id: ${layout.diskId ?? deriveUuid(layout.seed, 'disk')}`, 'unit: sectors', 'first-lba: 2048'];
  let start = 2048;
  for (const p of layout.partitions) {
    if (!Number.isInteger(p.sizeMiB) || p.sizeMiB <= 0) {
      throw new PsyError('bad-layout', `partition ${p.name}: size must be a positive whole number of MiB, got ${p.sizeMiB}`);
    }
    if (!/^[A-Za-z0-9._-]{1,36}$/.test(p.name)) {
      throw new PsyError('bad-layout', `partition name ${JSON.stringify(p.name)}: use 1-36 letters, digits, '.', '_' or '-'`);
    }
    const sectors = (p.sizeMiB * MiB) / SECTOR;
    const uuid = p.uuid ?? deriveUuid(layout.seed, `partition:${p.name}`);
    lines.push(`start=${start}, size=${sectors}, type=${typeGuid[p.kind]}, name="${p.name}", uuid=${uuid}`);
    start += sectors;
  }
  return lines.join('\n') + '\n';
}

/**
 * Create a sparse image file holding the layout's GPT (no filesystems yet). The file is
 * created or truncated at `path`; nothing but the partition table is written.
 */
export async function createGptImage(path: string, layout: DiskLayout, run: ToolRunner = runTool): Promise<Partition[]> {
  const names = new Set<string>();
  for (const p of layout.partitions) {
    if (names.has(p.name)) throw new PsyError('bad-layout', `partition name ${p.name} appears twice in the disk layout`);
    names.add(p.name);
  }
  const script = sfdiskScript(layout);
  const fh = await open(path, 'w');
  try {
    await fh.truncate(imageSizeBytes(layout));
  } finally {
    await fh.close();
  }
  await run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', path], {input: script, captureStdout: true});
  return readPartitions(path, run);
}

interface SfdiskJson {
  partitiontable?: {
    label?: string;
    sectorsize?: number;
    partitions?: {start: number; size: number; type: string; uuid: string; name?: string}[];
  };
}

/** The partitions of a GPT image file, read with `sfdisk -J`. */
export async function readPartitions(path: string, run: ToolRunner = runTool): Promise<Partition[]> {
  let json: SfdiskJson;
  try {
    const {stdout} = await run('sfdisk', ['-J', path], {captureStdout: true});
    json = JSON.parse(stdout.toString()) as SfdiskJson;
  } catch (err) {
    if (err instanceof Error && (err as {code?: string}).code === 'missing-tool') throw err;
    throw new PsyError('bad-image', `${path}: no readable partition table (${err instanceof Error ? err.message : String(err)})`);
  }
  const table = json.partitiontable;
  if (table?.label !== 'gpt') throw new PsyError('bad-image', `${path}: not a GPT disk image`);
  const sector = table.sectorsize ?? SECTOR;
  return (table.partitions ?? []).map((p, i) => ({
    number: i + 1,
    name: p.name ?? '',
    typeGuid: p.type,
    uuid: p.uuid,
    startSector: p.start,
    sectors: p.size,
    offset: p.start * sector,
    size: p.size * sector,
  }));
}

/** Find a partition by its GPT name; the error lists the names that exist. */
export async function findPartition(path: string, name: string, run: ToolRunner = runTool): Promise<Partition> {
  const parts = await readPartitions(path, run);
  const found = parts.find((p) => p.name === name);
  if (!found) {
    const have = parts.map((p) => p.name || `#${p.number}`).join(', ') || 'none';
    throw new PsyError('no-partition', `${path}: no partition named ${name} (partitions: ${have})`);
  }
  return found;
}
