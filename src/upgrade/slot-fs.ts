import {spawn} from 'node:child_process';
import {createHash} from 'node:crypto';
import {makeExt4} from '../disk/ext4.js';
import {deriveUuid, type Partition} from '../disk/gpt.js';
import {PsyError} from '../errors.js';
import {readRegion, writeRegion, type Region} from './region.js';

/**
 * An A/B slot is an ext4 filesystem written whole with `mke2fs -d` at the partition's
 * offset (no mount, no root), read back and amended with debugfs.
 */

/** Zeroing this much of a slot removes its superblock and label: GRUB no longer finds it. */
export const SLOT_HEAD_BYTES = 64 * 1024;

const EXT4_MAGIC_OFFSET = 1024 + 56;
const EXT4_LABEL_OFFSET = 1024 + 120;

interface Ran {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function runTool(tool: string, args: string[], env?: NodeJS.ProcessEnv, onStdout?: (b: Buffer) => void): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']});
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => (onStdout ? onStdout(b) : out.push(b)));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new PsyError('missing-tool', `${tool} not found (install e2fsprogs)`) : e),
    );
    child.on('close', (code) => resolve({code: code ?? 1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8').trim()}));
  });
}

/** The label of the ext4 filesystem at the start of the region, if there is one. */
export function slotFsLabel(r: Region): string | undefined {
  const sb = readRegion(r, 0, EXT4_LABEL_OFFSET + 16);
  if (sb.length < EXT4_LABEL_OFFSET + 16 || sb.readUInt16LE(EXT4_MAGIC_OFFSET) !== 0xef53) return undefined;
  const raw = sb.subarray(EXT4_LABEL_OFFSET, EXT4_LABEL_OFFSET + 16);
  const end = raw.indexOf(0);
  return raw.toString('utf8', 0, end < 0 ? 16 : end);
}

/** Step "mark unbootable": the slot's label disappears, so neither GRUB nor fallback can pick it. */
export function invalidateSlot(r: Region): void {
  writeRegion(r, 0, Buffer.alloc(Math.min(SLOT_HEAD_BYTES, r.size)), true);
}

function debugfsTarget(r: Region): string {
  return r.offset === 0 ? r.path : `${r.path}?offset=${r.offset}`;
}

export interface MakeSlotOptions {
  readonly label: string;
  readonly sourceDir: string;
  /** Fixed timestamps and identifiers: the same content gives the same bytes. */
  readonly sourceDateEpoch: number;
  /** Seed for the filesystem UUID and hash seed (default: the label). */
  readonly seed?: string;
}

/** The region as the disk library's partition record (a live device is one at offset 0). */
export function regionPartition(r: Region, name: string): Partition {
  return {number: 0, name, typeGuid: '', uuid: '', startSector: r.offset / 512, sectors: r.size / 512, offset: r.offset, size: r.size};
}

/** Writes a complete ext4 filesystem holding `sourceDir` into the region (src/disk's mke2fs -d). */
export async function makeSlotFs(r: Region, o: MakeSlotOptions): Promise<void> {
  const seed = o.seed ?? 'psyopsOS-slot';
  await makeExt4(
    r.path,
    regionPartition(r, o.label),
    {label: o.label, uuid: deriveUuid(seed, `${o.label}:uuid`), hashSeed: deriveUuid(seed, `${o.label}:hash-seed`), epoch: o.sourceDateEpoch},
    o.sourceDir,
  );
}

/** sha256 and size of one file inside the slot's filesystem (debugfs cat), or undefined. */
export async function hashSlotFile(r: Region, name: string): Promise<{sha256: string; size: number} | undefined> {
  if (slotFsLabel(r) === undefined) return undefined;
  const h = createHash('sha256');
  let size = 0;
  const res = await runTool('debugfs', ['-R', `cat "/${name}"`, debugfsTarget(r)], undefined, (b) => {
    h.update(b);
    size += b.length;
  });
  if (res.code !== 0 || /File not found|not found by ext2_lookup/.test(res.stderr)) return undefined;
  return {sha256: h.digest('hex'), size};
}

/** A small file from the slot's filesystem, or undefined when absent or unreadable. */
export async function readSlotFile(r: Region, name: string): Promise<Buffer | undefined> {
  if (slotFsLabel(r) === undefined) return undefined;
  const res = await runTool('debugfs', ['-R', `cat "/${name}"`, debugfsTarget(r)]);
  if (res.code !== 0 || /File not found|not found by ext2_lookup/.test(res.stderr)) return undefined;
  return res.stdout;
}

/** Adds a small file to the slot's filesystem (the version record). */
export async function writeSlotFile(r: Region, name: string, hostFile: string, sourceDateEpoch: number): Promise<void> {
  const env = {E2FSPROGS_FAKE_TIME: String(sourceDateEpoch)};
  const res = await runTool('debugfs', ['-w', '-R', `write "${hostFile}" "${name}"`, debugfsTarget(r)], env);
  if (res.code !== 0 || /error|could not|failed/i.test(res.stderr.replace(/^debugfs [^\n]*\n?/, ''))) {
    throw new PsyError('slot-write-failed', `recording ${name} on the slot failed: ${res.stderr}`);
  }
  const fix = await runTool('debugfs', ['-w', '-R', `sif "/${name}" ctime @${sourceDateEpoch}`, debugfsTarget(r)], env);
  if (fix.code !== 0) throw new PsyError('slot-write-failed', `debugfs on the slot failed: ${fix.stderr}`);
}
