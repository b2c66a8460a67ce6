import {execFileSync, spawnSync} from 'node:child_process';
import {createHash, randomBytes} from 'node:crypto';
import {mkdirSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {openImage} from '../src/upgrade/place.js';
import {readRegion, writeRegion, type Region} from '../src/upgrade/region.js';
import {DIRECT_WRITE_MIN, checkSlotFiles, makeSlotFs} from '../src/upgrade/slot-fs.js';
import {EPOCH, UpgradeRig} from './helpers/upgrade-rig.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** debugfs output for a slot, read-only. */
function debugfs(r: Region, cmd: string): string {
  return execFileSync('debugfs', ['-R', cmd, `${r.path}?offset=${r.offset}`], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']});
}

describe('a slot filesystem with big files written in large pieces', () => {
  let rig: UpgradeRig;
  beforeEach(() => {
    rig = new UpgradeRig('upgrade-slot-write');
  });
  afterEach(() => rig.cleanup());

  /** Members as an ostar holds them: big ones over the direct-write size, with partial last blocks, and small ones. */
  function content(): Record<string, Buffer> {
    return {
      squashfs: randomBytes(5 * 1024 * 1024 + 777),
      initramfs: randomBytes(DIRECT_WRITE_MIN + 1),
      kernel: randomBytes(DIRECT_WRITE_MIN - 1),
      'kernel.version': Buffer.from('6.6.0\n'),
    };
  }

  it('holds every byte, passes e2fsck, has no unwritten extents and zeroed block tails, whatever was on the slot before', async () => {
    const place = await openImage(await rig.image('disk.img', 32));
    const r = place.slots.B;
    const files = content();
    const src = join(rig.dir, 'src');
    mkdirSync(src);
    for (const [name, data] of Object.entries(files)) writeFileSync(join(src, name), data);

    const fingerprints: string[] = [];
    for (const fill of [0xa5, 0x00]) {
      // the old slot's blocks: garbage that must not show through
      writeRegion(r, 0, Buffer.alloc(r.size, fill));
      await makeSlotFs(r, {label: 'psyopsOS-B', sourceDir: src, sourceDateEpoch: EPOCH, tmpDir: rig.dir});

      const copy = join(rig.dir, `slot-${fill}.ext4`);
      writeFileSync(copy, readRegion(r, 0, r.size));
      const fsck = spawnSync('e2fsck', ['-fn', copy], {encoding: 'utf8'});
      expect(fsck.status, fsck.stdout + fsck.stderr).toBe(0);

      const back = await checkSlotFiles(
        r,
        Object.keys(files).map((name) => ({name, hostFile: join(src, name)})),
      );
      for (const [name, data] of Object.entries(files)) {
        expect(back.get(name), name).toEqual({sha256: sha(data), size: data.length, same: true});
      }
      // the kernel's own view: debugfs reads the file through its extents
      expect(
        sha(execFileSync('debugfs', ['-R', 'cat /squashfs', `${r.path}?offset=${r.offset}`], {stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20})),
      ).toBe(sha(files['squashfs']!));

      const stats: string[] = [];
      for (const name of Object.keys(files).sort()) {
        const ex = debugfs(r, `ex /${name}`);
        expect(ex, name).not.toMatch(/Uninit/i);
        const stat = debugfs(r, `stat /${name}`);
        expect(stat).toMatch(new RegExp(`Size: ${files[name]!.length}\\b`));
        expect(stat).toMatch(/mtime: 0x6553f100/); // EPOCH
        stats.push(stat, ex);
        // bytes after the end of the file in its last block are zero
        const size = files[name]!.length;
        if (size % 4096 !== 0 && size >= DIRECT_WRITE_MIN) {
          const last = Math.floor(size / 4096);
          const leaf = ex
            .split('\n')
            .map((l) => /^\s*\d+\/\s*\d+\s+\d+\/\s*\d+\s+(\d+)\s+-\s+(\d+)\s+(\d+)\s+-\s+\d+/.exec(l))
            .find((m) => m && Number(m[1]) <= last && last <= Number(m[2]));
          expect(leaf, `extent of block ${last} of ${name}`).toBeDefined();
          const physical = Number(leaf![3]) + (last - Number(leaf![1]));
          const tail = readRegion(r, physical * 4096 + (size % 4096), 4096 - (size % 4096));
          expect(
            tail.every((b) => b === 0),
            `${name}: tail of its last block`,
          ).toBe(true);
        }
      }
      fingerprints.push(sha(Buffer.from(stats.join('\n'))));
    }
    // the same content gives the same filesystem layout and inodes, whatever was there before
    expect(fingerprints[0]).toBe(fingerprints[1]);
  });

  it('refuses content that does not fit the slot before touching it', async () => {
    const place = await openImage(await rig.image('small.img', 8));
    const r = place.slots.B;
    const src = join(rig.dir, 'big');
    mkdirSync(src);
    writeFileSync(join(src, 'squashfs'), Buffer.alloc(9 * 1024 * 1024, 1));
    const before = sha(readRegion(r, 0, r.size));
    await expect(makeSlotFs(r, {label: 'psyopsOS-B', sourceDir: src, sourceDateEpoch: EPOCH, tmpDir: rig.dir})).rejects.toMatchObject({
      code: 'partition-too-small',
    });
    expect(sha(readRegion(r, 0, r.size))).toBe(before);
  });
});
