import {closeSync, copyFileSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync, writeFileSync, writeSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createHash} from 'node:crypto';
import {makeExt4} from '../disk/ext4.js';
import {deriveUuid, type Partition} from '../disk/gpt.js';
import {PsyError} from '../errors.js';
import {sha256FileSync} from '../fs/sha256-file.js';
import {runToolExit} from '../tools/run.js';
import {readRegion, writeRegion, type Region} from './region.js';

/**
 * An A/B slot is an ext4 filesystem written whole with `mke2fs -d` at the partition's
 * offset (no mount, no root), read back and amended with debugfs.
 */

/** Zeroing this much of a slot removes its superblock and label: GRUB no longer finds it. */
export const SLOT_HEAD_BYTES = 64 * 1024;

const EXT4_MAGIC_OFFSET = 1024 + 56;
const EXT4_LABEL_OFFSET = 1024 + 120;

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
  /** More files at the root, given as bytes (an ostar's big members, kept in memory). */
  readonly memory?: ReadonlyArray<{readonly name: string; readonly data: Buffer}>;
  /** Fixed timestamps and identifiers: the same content gives the same bytes. */
  readonly sourceDateEpoch: number;
  /** Seed for the filesystem UUID and hash seed (default: the label). */
  readonly seed?: string;
  /** Where a scratch folder may be made (default: the system's temporary folder). */
  readonly tmpDir?: string;
}

/** The region as the disk library's partition record (a live device is one at offset 0). */
export function regionPartition(r: Region, name: string): Partition {
  return {number: 0, name, typeGuid: '', uuid: '', startSector: r.offset / 512, sectors: r.size / 512, offset: r.offset, size: r.size};
}

/**
 * Members at least this big are written by us in 1 MiB pieces straight to the blocks the
 * filesystem gave them; mke2fs -d would copy them 4 KiB at a time (one pwrite each).
 */
export const DIRECT_WRITE_MIN = 1 << 20;
const BLOCK = 4096;

/**
 * Refuses content that cannot fit the slot, with the same headroom src/disk's makeExt4
 * keeps (ext4 metadata takes a few percent). Run before anything is written: `what`
 * names the content in the message (the tarball, not where it was unpacked).
 */
export function checkSlotFits(r: Region, label: string, what: string, sizes: readonly number[]): void {
  const bytes = sizes.reduce((sum, n) => sum + Math.ceil(n / BLOCK) * BLOCK + 256, 0);
  if (bytes > r.size * 0.9 - 4 * 1024 * 1024) {
    throw new PsyError(
      'partition-too-small',
      `${what} (${(bytes / 1048576).toFixed(1)} MiB unpacked) does not fit slot ${label} (${(r.size / 1048576).toFixed(0)} MiB)`,
    );
  }
}

/**
 * Writes a complete ext4 filesystem holding the files of `sourceDir` into the region.
 * Small files and the filesystem itself come from mke2fs -d (src/disk); each big file is
 * made empty there, given its size and blocks with debugfs (fallocate, then its extents
 * marked written), and its bytes are copied to those blocks in large writes, the last
 * block's tail zeroed. The read-back step checks every byte through the filesystem.
 */
export async function makeSlotFs(r: Region, o: MakeSlotOptions): Promise<void> {
  const seed = o.seed ?? 'psyopsOS-slot';
  const ext4 = {label: o.label, uuid: deriveUuid(seed, `${o.label}:uuid`), hashSeed: deriveUuid(seed, `${o.label}:hash-seed`), epoch: o.sourceDateEpoch};
  const entries: Array<{name: string; path: string; file: boolean; size: number; data?: Buffer}> = readdirSync(o.sourceDir, {withFileTypes: true}).map((e) => ({
    name: e.name,
    path: join(o.sourceDir, e.name),
    file: e.isFile(),
    size: e.isFile() ? statSync(join(o.sourceDir, e.name)).size : 0,
  }));
  for (const m of o.memory ?? []) entries.push({name: m.name, path: '', file: true, size: m.data.length, data: m.data});
  const direct = entries.filter((e) => e.file && e.size >= DIRECT_WRITE_MIN).sort((a, b) => (a.name < b.name ? -1 : 1));
  if ((direct.length === 0 || entries.some((e) => !e.file)) && !entries.some((e) => e.data !== undefined)) {
    await makeExt4(r.path, regionPartition(r, o.label), ext4, o.sourceDir);
    return;
  }
  checkSlotFits(
    r,
    o.label,
    `content of ${o.sourceDir}`,
    entries.map((e) => e.size),
  );
  const skeleton = mkdtempSync(join(o.tmpDir ?? tmpdir(), 'psy-slot-skeleton-'));
  try {
    for (const e of entries) {
      if (direct.includes(e)) writeFileSync(join(skeleton, e.name), '');
      else if (e.data !== undefined) writeFileSync(join(skeleton, e.name), e.data);
      else copyFileSync(e.path, join(skeleton, e.name));
    }
    await makeExt4(r.path, regionPartition(r, o.label), ext4, skeleton);
    if (direct.length === 0) return;
    const env = {E2FSPROGS_FAKE_TIME: String(o.sourceDateEpoch)};
    // 1: size and blocks for each big file (debugfs allocates them as unwritten extents)
    const allocated = await runDebugfsScript(
      r,
      direct.flatMap((f) => [`sif "/${f.name}" size ${f.size}`, `fallocate "/${f.name}" 0 ${Math.ceil(f.size / BLOCK) - 1}`, `ex "/${f.name}"`]),
      {env, failed: WRITE_FAILED},
    );
    const maps = direct.map((f, i) => {
      const extents = parseExtents(allocated[3 * i + 2] ?? '');
      const blocks = extents.reduce((sum, x) => sum + x.length, 0);
      let next = 0;
      for (const x of [...extents].sort((a, b) => a.logical - b.logical)) {
        if (x.logical !== next) break;
        next += x.length;
      }
      if (blocks !== Math.ceil(f.size / BLOCK) || next !== blocks) {
        throw new PsyError('slot-write-failed', `${o.label}: debugfs did not allocate ${f.name} whole (${blocks} of ${Math.ceil(f.size / BLOCK)} blocks)`);
      }
      return {file: f, extents};
    });
    // 2: the extents are marked written, so the bytes copied next are what the file holds
    const cmds: string[] = [];
    for (const {file, extents} of maps) {
      cmds.push(`eo "/${file.name}"`);
      for (const x of extents) cmds.push(`goto ${x.logical}`, `replace_node ${x.logical} ${x.length} ${x.physical}`);
      cmds.push('ec');
      for (const t of ['atime', 'mtime', 'ctime', 'crtime']) cmds.push(`sif "/${file.name}" ${t} @${o.sourceDateEpoch}`);
    }
    await runDebugfsScript(r, cmds, {env, failed: WRITE_FAILED});
    for (const {file, extents} of maps) copyToExtents(r, file.data ?? file.path, file.size, extents);
  } finally {
    rmSync(skeleton, {recursive: true, force: true});
  }
}

interface Extent {
  readonly logical: number;
  readonly physical: number;
  readonly length: number;
  readonly unwritten: boolean;
}

/** The leaf extents in debugfs `ex` output. */
function parseExtents(exText: string): Extent[] {
  const out: Extent[] = [];
  for (const line of exText.split('\n')) {
    const m = /^\s*(\d+)\/\s*(\d+)\s+\d+\/\s*\d+\s+(\d+)(?:\s+-\s+\d+)?\s+(\d+)(?:\s+-\s+\d+)?\s+(\d+)\s*(\S*)/.exec(line);
    if (!m || m[1] !== m[2]) continue; // index nodes: only leaves map data
    out.push({logical: Number(m[3]), physical: Number(m[4]), length: Number(m[5]), unwritten: /Uninit/i.test(m[6] ?? '')});
  }
  return out;
}

/**
 * Copies a host file (1 MiB at a time) or bytes in memory (each extent in one positional
 * write, no copy) to its blocks in the region, and zeroes the last block's tail. No fsync:
 * the caller flushes once.
 */
function copyToExtents(r: Region, source: string | Buffer, size: number, extents: readonly Extent[]): void {
  const buf = typeof source === 'string' ? Buffer.alloc(1 << 20) : Buffer.alloc(0);
  const src = typeof source === 'string' ? openSync(source, 'r') : undefined;
  const dst = openSync(r.path, 'r+');
  try {
    for (const x of extents) {
      const start = x.logical * BLOCK;
      const end = Math.min((x.logical + x.length) * BLOCK, size);
      let at = start;
      if (typeof source !== 'string') {
        for (let w = 0; w < end - start;) w += writeSync(dst, source, start + w, end - start - w, r.offset + x.physical * BLOCK + w);
        at = end;
      }
      while (at < end && src !== undefined) {
        const n = readSync(src, buf, 0, Math.min(buf.length, end - at), at);
        if (n === 0) throw new PsyError('slot-write-failed', `${String(source)} ended at byte ${at} of ${size}`);
        let w = 0;
        while (w < n) w += writeSync(dst, buf, w, n - w, r.offset + x.physical * BLOCK + (at - start) + w);
        at += n;
      }
      const tail = (x.logical + x.length) * BLOCK - end;
      if (end === size && tail > 0 && tail < BLOCK) {
        const zeros = Buffer.alloc(tail);
        writeSync(dst, zeros, 0, tail, r.offset + x.physical * BLOCK + (end - start));
      }
    }
  } finally {
    if (src !== undefined) closeSync(src);
    closeSync(dst);
  }
}

/**
 * Runs debugfs over a command script; returns each command's output, in order. With
 * `write` (debugfs -w), any error line fails the write as `failed` says; a read-only run
 * leaves judging the sections to the caller.
 */
async function runDebugfsScript(
  r: Region,
  cmds: readonly string[],
  write?: {readonly env: Readonly<Record<string, string>>; readonly failed: string},
): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'psy-slot-'));
  try {
    const cmdFile = join(dir, 'cmds');
    writeFileSync(cmdFile, cmds.join('\n') + '\n');
    const res = await runToolExit('debugfs', [...(write ? ['-w'] : []), '-f', cmdFile, debugfsTarget(r)], write ? {env: write.env} : {});
    if (write !== undefined) {
      const errors = res.stderr
        .toString('utf8')
        .trim()
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('debugfs '));
      if (res.code !== 0 || errors.length) throw new PsyError('slot-write-failed', `${write.failed}: ${errors.slice(0, 3).join(' | ')}`);
    }
    // debugfs -f echoes each command as "debugfs: <command>" before its output
    return res.stdout
      .toString('utf8')
      .split(/^debugfs: /m)
      .slice(1)
      .map((section) => section.slice(section.indexOf('\n') + 1));
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}

const WRITE_FAILED = "writing the slot's filesystem with debugfs failed";

type FileMap = {size: number; extents: Array<[number, number, number]>};

function parseFileMap(statText: string, exText: string): FileMap | undefined {
  const size = /\bSize: (\d+)/.exec(statText);
  if (!size || !/Flags: 0x[0-9a-f]*8[0-9a-f]{4}\b/.test(statText)) return undefined;
  // unwritten extents read as zeros: leave them out
  const extents = parseExtents(exText)
    .filter((x) => !x.unwritten)
    .map((x): [number, number, number] => [x.logical, x.physical, x.length]);
  return {size: Number(size[1]), extents};
}

/** Size and extents of several files in one debugfs run (undefined: missing or not extent-mapped). */
async function fileMaps(r: Region, names: readonly string[]): Promise<Map<string, FileMap | undefined>> {
  const sections = await runDebugfsScript(
    r,
    names.flatMap((n) => [`stat "/${n}"`, `ex "/${n}"`]),
  );
  const out = new Map<string, FileMap | undefined>();
  names.forEach((n, i) => out.set(n, parseFileMap(sections[2 * i] ?? '', sections[2 * i + 1] ?? '')));
  return out;
}

/**
 * sha256 and size of one file inside the slot's filesystem, or undefined. The file's
 * extents come from debugfs; the bytes are read straight from the device or image at
 * those blocks (much faster than piping them through debugfs), holes as zeros.
 */
export async function hashSlotFile(r: Region, name: string): Promise<{sha256: string; size: number} | undefined> {
  if (slotFsLabel(r) === undefined) return undefined;
  return (await hashSlotFiles(r, [name])).get(name);
}

/** hashSlotFile for several files, with one debugfs run for their maps. */
export async function hashSlotFiles(r: Region, names: readonly string[]): Promise<Map<string, {sha256: string; size: number} | undefined>> {
  return checkSlotFiles(
    r,
    names.map((name) => ({name})),
  );
}

/** What a slot file read back to: its sha256 and size, and whether it equals the host file it was made from. */
export interface SlotFileCheck {
  /** Empty when only compared (`hash: false`). */
  readonly sha256: string;
  readonly size: number;
  /** Set when a host file was given: every byte of the slot file equals it. */
  readonly same?: boolean;
}

/**
 * Reads files back from the slot and hashes them; with `hostFile`, each byte read is also
 * compared with that file, in the same pass (one sha256 instead of one per side). With
 * `hash: false` files that have a host file are only compared: the caller already knows
 * the host file's sha256, so equal bytes have it too, and a second sha256 pass is saved.
 */
export async function checkSlotFiles(
  r: Region,
  files: ReadonlyArray<{name: string; hostFile?: string; bytes?: Buffer}>,
  options: {hash?: boolean} = {},
): Promise<Map<string, SlotFileCheck | undefined>> {
  const out = new Map<string, SlotFileCheck | undefined>();
  if (slotFsLabel(r) === undefined) {
    for (const f of files) out.set(f.name, undefined);
    return out;
  }
  const maps = await fileMaps(
    r,
    files.map((f) => f.name),
  );
  for (const f of files) {
    const map = maps.get(f.name);
    const host = f.bytes ?? f.hostFile;
    if (map) {
      out.set(f.name, hashMapped(r, f.name, map, host, options.hash === false && host !== undefined));
      continue;
    }
    const got = await hashSlotFileViaDebugfs(r, f.name);
    if (got && host !== undefined) {
      const host = f.bytes !== undefined ? {sha256: createHash('sha256').update(f.bytes).digest('hex'), size: f.bytes.length} : sha256FileSync(f.hostFile!);
      out.set(f.name, {...got, same: host.sha256 === got.sha256 && host.size === got.size});
    } else {
      out.set(f.name, got);
    }
  }
  return out;
}

function hashMapped(r: Region, name: string, map: FileMap, hostFile?: string | Buffer, compareOnly = false): SlotFileCheck {
  const blockSize = 1024 << readRegion(r, 1024 + 24, 4).readUInt32LE(0);
  const h = compareOnly ? {update: (_b: Buffer) => {}, digest: () => ''} : createHash('sha256');
  const chunk = Buffer.alloc(1 << 20);
  const zeros = Buffer.alloc(1 << 20);
  const other = Buffer.alloc(typeof hostFile === 'string' ? 1 << 20 : 0);
  const fd = openSync(r.path, 'r');
  const hostFd = typeof hostFile === 'string' ? openSync(hostFile, 'r') : undefined;
  const hostBytes = typeof hostFile === 'string' ? undefined : hostFile;
  let same = true;
  // compare the next bytes of the slot file (at file position pos) with the host file
  const compare = (data: Buffer, pos: number) => {
    if (hostBytes !== undefined && same) same = pos + data.length <= hostBytes.length && data.equals(hostBytes.subarray(pos, pos + data.length));
    if (hostFd === undefined || !same) return;
    let done = 0;
    while (done < data.length) {
      const n = readSync(hostFd, other, 0, Math.min(other.length, data.length - done), pos + done);
      if (n === 0 || !other.subarray(0, n).equals(data.subarray(done, done + n))) {
        same = false;
        return;
      }
      done += n;
    }
  };
  try {
    let pos = 0; // bytes of the file hashed so far
    const sorted = [...map.extents].sort((a, b) => a[0] - b[0]);
    const fill = (upto: number) => {
      while (pos < upto) {
        const n = Math.min(zeros.length, upto - pos);
        h.update(zeros.subarray(0, n));
        compare(zeros.subarray(0, n), pos);
        pos += n;
      }
    };
    for (const [logical, physical, length] of sorted) {
      const start = logical * blockSize;
      if (start >= map.size) break;
      fill(start);
      let remaining = Math.min(length * blockSize, map.size - start);
      let at = r.offset + physical * blockSize;
      while (remaining > 0) {
        const n = readSync(fd, chunk, 0, Math.min(chunk.length, remaining), at);
        if (n === 0) throw new PsyError('slot-verify-failed', `short read of ${name} in ${r.path}`);
        h.update(chunk.subarray(0, n));
        compare(chunk.subarray(0, n), pos);
        remaining -= n;
        at += n;
        pos += n;
      }
    }
    fill(map.size);
    // the host file must not be longer than the slot file
    if (hostFd !== undefined && same && readSync(hostFd, other, 0, 1, map.size) !== 0) same = false;
    if (hostBytes !== undefined && hostBytes.length !== map.size) same = false;
  } finally {
    closeSync(fd);
    if (hostFd !== undefined) closeSync(hostFd);
  }
  return {sha256: h.digest('hex'), size: map.size, ...(hostFile !== undefined ? {same} : {})};
}

async function hashSlotFileViaDebugfs(r: Region, name: string): Promise<{sha256: string; size: number} | undefined> {
  const h = createHash('sha256');
  let size = 0;
  const res = await runToolExit('debugfs', ['-R', `cat "/${name}"`, debugfsTarget(r)], {
    onStdout: (b) => {
      h.update(b);
      size += b.length;
    },
  });
  if (res.code !== 0 || /File not found|not found by ext2_lookup/.test(res.stderr.toString('utf8'))) return undefined;
  return {sha256: h.digest('hex'), size};
}

/** A small file from the slot's filesystem, or undefined when absent or unreadable. */
export async function readSlotFile(r: Region, name: string): Promise<Buffer | undefined> {
  if (slotFsLabel(r) === undefined) return undefined;
  const res = await runToolExit('debugfs', ['-R', `cat "/${name}"`, debugfsTarget(r)]);
  if (res.code !== 0 || /File not found|not found by ext2_lookup/.test(res.stderr.toString('utf8'))) return undefined;
  return res.stdout;
}

/** Adds small files (host path → name at the root) to the slot's filesystem in one debugfs run. */
export async function writeSlotFiles(r: Region, files: ReadonlyArray<{name: string; hostFile: string}>, sourceDateEpoch: number): Promise<void> {
  const cmds = files.flatMap((f) => [
    `write "${f.hostFile}" "${f.name}"`,
    ...['atime', 'mtime', 'ctime', 'crtime'].map((t) => `sif "/${f.name}" ${t} @${sourceDateEpoch}`),
    `sif "/${f.name}" uid 0`,
    `sif "/${f.name}" gid 0`,
  ]);
  await runDebugfsScript(r, cmds, {
    env: {E2FSPROGS_FAKE_TIME: String(sourceDateEpoch)},
    failed: `recording ${files.map((f) => f.name).join(', ')} on the slot failed`,
  });
}
