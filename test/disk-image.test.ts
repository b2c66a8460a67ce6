import {createHash} from 'node:crypto';
import {existsSync} from 'node:fs';
import {chmod, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {
  buildDiskImage,
  ext4Identity,
  findPartition,
  listExt4,
  listFat,
  psyopsLabels,
  psyopsPartitions,
  readExt4File,
  readFatFile,
  readPartitions,
  writeFatFile,
  writePartition,
} from '../src/disk/index.js';
import {runTool} from '../src/tools/run.js';
import {directoryEntries, writeTar} from '../src/image/tar.js';

const EPOCH = 1700000000;
const small = {espMiB: 64, secretMiB: 8, slotMiB: 32};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'psy-disk-'));
});
afterEach(async () => {
  await rm(dir, {recursive: true, force: true});
});

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** A slot-like folder; `mtime` varies the host timestamps that must not leak. */
async function makeTree(root: string, version: string, mtime: number): Promise<void> {
  await mkdir(join(root, 'sub/deeper'), {recursive: true});
  await writeFile(join(root, 'kernel'), 'kernel-bytes\n'.repeat(1000));
  await writeFile(join(root, 'version'), version + '\n');
  await writeFile(join(root, 'sub/deeper/data.bin'), Buffer.alloc(70000, 7));
  await writeFile(join(root, 'sub/z-last'), 'z');
  await chmod(join(root, 'sub/z-last'), 0o600);
  for (const p of ['kernel', 'version', 'sub/deeper/data.bin', 'sub/z-last', 'sub/deeper', 'sub']) {
    await utimes(join(root, p), mtime, mtime + 0.123);
  }
}

async function buildSample(base: string, mtime: number): Promise<string> {
  const img = join(base, 'disk.img');
  await makeTree(join(base, 'a'), 'A-1', mtime);
  await makeTree(join(base, 'b'), 'B-1', mtime + 50);
  await mkdir(join(base, 'esp/EFI/BOOT'), {recursive: true});
  await writeFile(join(base, 'esp/EFI/BOOT/BOOTX64.EFI'), 'efi');
  await mkdir(join(base, 'esp/grub'), {recursive: true});
  await writeFile(join(base, 'esp/grub/grub.cfg'), 'set default=0\n');
  await buildDiskImage(img, {
    seed: 'test-disk',
    epoch: EPOCH,
    partitions: psyopsPartitions(small, {esp: {dir: join(base, 'esp')}, a: {dir: join(base, 'a')}, b: {dir: join(base, 'b')}}),
  });
  return img;
}

describe('disk images without root', () => {
  it('creates the psyopsOS GPT layout with labelled filesystems and content', async () => {
    const img = await buildSample(dir, 1600000000);
    const parts = await readPartitions(img);
    expect(parts.map((p) => p.name)).toEqual(['PSYOPSOSEFI', 'psyops-secret', 'psyopsOS-A', 'psyopsOS-B']);
    expect(parts.map((p) => p.size / 1048576)).toEqual([64, 8, 32, 32]);
    expect(parts[0]!.offset).toBe(1048576);
    expect(parts[0]!.typeGuid).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    const st = await stat(img);
    expect(st.size).toBe((2 + 64 + 8 + 64) * 1048576);
    expect(st.blocks * 512).toBeLessThan(st.size / 2); // sparse

    // Labels as blkid sees them (what findfs, GRUB and fstab key on).
    for (const p of parts) {
      const {stdout} = await runTool('blkid', ['--probe', '--offset', String(p.offset), '--size', String(p.size), '-s', 'LABEL', '-o', 'value', img]);
      expect(stdout.toString().trim()).toBe(p.name);
    }
    const a = await findPartition(img, psyopsLabels.a);
    expect((await readExt4File(img, a, '/version')).toString()).toBe('A-1\n');
    expect((await readExt4File(img, a, '/sub/deeper/data.bin')).equals(Buffer.alloc(70000, 7))).toBe(true);
    const top = await listExt4(img, a, '/');
    expect(top.map((e) => e.path)).toEqual(['kernel', 'lost+found', 'sub', 'version']);
    expect(top.every((e) => e.uid === 0 && e.gid === 0)).toBe(true);
    const sub = await listExt4(img, a, '/sub');
    expect(sub.find((e) => e.path === 'z-last')!.mode & 0o777).toBe(0o600);
    expect((await ext4Identity(img, a)).label).toBe('psyopsOS-A');
    // Filesystem checks are clean.
    await runTool('e2fsck', ['-fn', `${img}?offset=${a.offset}`]);
    const esp = await findPartition(img, psyopsLabels.esp);
    expect(await listFat(img, esp)).toEqual(['EFI', 'EFI/BOOT', 'EFI/BOOT/BOOTX64.EFI', 'grub', 'grub/grub.cfg']);
    expect((await readFatFile(img, esp, '/grub/grub.cfg')).toString()).toBe('set default=0\n');
  });

  it('gives identical bytes for two builds in different folders with different host timestamps', async () => {
    const one = await buildSample(join(dir, 'one'), 1600000000);
    await new Promise((r) => setTimeout(r, 1100));
    const two = await buildSample(join(dir, 'second-build-folder'), 1650000000);
    expect(await sha256(one)).toBe(await sha256(two));
  });

  it('replaces one slot from a tar and leaves the other partitions untouched', async () => {
    const img = await buildSample(dir, 1600000000);
    const region = async (name: string) => {
      const p = await findPartition(img, name);
      const buf = await readFile(img);
      return createHash('sha256')
        .update(buf.subarray(p.offset, p.offset + p.size))
        .digest('hex');
    };
    const beforeA = await region(psyopsLabels.a);
    const beforeEsp = await region(psyopsLabels.esp);
    const beforeB = await region(psyopsLabels.b);
    await makeTree(join(dir, 'newb'), 'B-2', 1600000000);
    const tar = join(dir, 'os.tar');
    await writeTar(tar, await directoryEntries(join(dir, 'newb')), EPOCH);
    await writePartition(img, psyopsLabels.b, {fs: 'ext4', content: {tar}, epoch: EPOCH});
    const b = await findPartition(img, psyopsLabels.b);
    expect((await readExt4File(img, b, '/version')).toString()).toBe('B-2\n');
    expect(await region(psyopsLabels.b)).not.toBe(beforeB);
    expect(await region(psyopsLabels.a)).toBe(beforeA);
    expect(await region(psyopsLabels.esp)).toBe(beforeEsp);
  });

  it('writes one file in the FAT partition in place', async () => {
    const img = await buildSample(dir, 1600000000);
    const esp = await findPartition(img, psyopsLabels.esp);
    await writeFatFile(img, esp, '/grub/grubenv', Buffer.alloc(1024, 0x23), EPOCH);
    await writeFatFile(img, esp, '/grub/grub.cfg', 'set default=1\n', EPOCH);
    expect((await readFatFile(img, esp, '/grub/grubenv')).length).toBe(1024);
    expect((await readFatFile(img, esp, '/grub/grub.cfg')).toString()).toBe('set default=1\n');
    await expect(readFatFile(img, esp, '/nope')).rejects.toThrow(/no file \/nope/);
  });

  it('formats a valid FAT32 ESP inside a full-size (3330 MiB, sparse) image', async () => {
    const img = join(dir, 'full.img');
    await buildDiskImage(img, {seed: 'full', epoch: EPOCH, partitions: psyopsPartitions()});
    expect((await stat(img)).size).toBe(3330 * 1048576);
    const esp = await findPartition(img, psyopsLabels.esp);
    const {stdout} = await runTool('minfo', ['-i', `${img}@@${esp.offset}`, '::'], {env: {MTOOLS_SKIP_CHECK: '1'}});
    const clusterSectors = Number(/cluster size: (\d+) sectors/.exec(stdout.toString())![1]);
    const total = Number(/big size: (\d+) sectors/.exec(stdout.toString())![1]);
    expect(total).toBeGreaterThan(128 * 2048 - 16); // the whole partition, not a slice of it
    expect(total / clusterSectors).toBeGreaterThan(65525);
    await writeFatFile(img, esp, '/a-long-file-name.cfg', 'x', EPOCH);
    expect(await listFat(img, esp)).toEqual(['a-long-file-name.cfg']);
  });

  it('says which partition is missing and which exist', async () => {
    const img = await buildSample(dir, 1600000000);
    await expect(findPartition(img, 'psyopsOS-C')).rejects.toThrow(
      'no partition named psyopsOS-C (partitions: PSYOPSOSEFI, psyops-secret, psyopsOS-A, psyopsOS-B)',
    );
    await writeFile(join(dir, 'plain'), Buffer.alloc(1 << 20));
    await expect(readPartitions(join(dir, 'plain'))).rejects.toMatchObject({code: 'bad-image'});
  });

  it('refuses content larger than the slot with a one-line error', async () => {
    const big = join(dir, 'big');
    await mkdir(big);
    await writeFile(join(big, 'squashfs'), Buffer.alloc(40 * 1048576, 1));
    const err = await buildDiskImage(join(dir, 'x.img'), {
      seed: 's',
      epoch: EPOCH,
      partitions: psyopsPartitions(small, {a: {dir: big}}),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({code: 'partition-too-small'});
    expect((err as Error).message).toMatch(/does not fit partition psyopsOS-A \(32 MiB\)/);
    expect((err as Error).message).not.toContain('\n');
    // Nothing half-written is left behind.
    expect(existsSync(join(dir, 'x.img'))).toBe(false);
  });

  it('names the Debian package of a missing tool', async () => {
    const old = process.env['PATH'];
    process.env['PATH'] = join(dir, 'empty-path');
    try {
      await expect(readPartitions(join(dir, 'x.img'))).rejects.toThrow('sfdisk not found on PATH: install the Debian package fdisk');
    } finally {
      process.env['PATH'] = old;
    }
  });
});
