import {createHash} from 'node:crypto';
import {chmod, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {runTool} from '../src/tools/run.js';
import {compress, cpioArchive} from '../src/image/cpio.js';
import {elfClosure, readElfDeps} from '../src/image/elf.js';
import {featureGlobs, matchModuleGlobs, moduleClosure, moduleFirmware, readModuleTree} from '../src/image/kmod.js';
import {makeSquashfs} from '../src/image/squashfs.js';
import {extractTar} from '../src/image/tar.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'psy-os-image-'));
});
afterEach(async () => {
  await rm(dir, {recursive: true, force: true});
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('cpio newc writer', () => {
  it('writes device nodes, modes and symlinks that GNU cpio reads back, sorted and reproducible', async () => {
    const entries = [
      {type: 'file', path: 'init', mode: 0o755, data: Buffer.from('#!/bin/sh\n')},
      {type: 'dir', path: 'dev', mode: 0o755},
      {type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1},
      {type: 'dir', path: 'bin', mode: 0o755},
      {type: 'symlink', path: 'bin/sh', target: 'busybox'},
    ] as const;
    const a = cpioArchive(entries, 1700000000);
    const b = cpioArchive([...entries].reverse(), 1700000000);
    expect(a.equals(b)).toBe(true);
    expect(a.length % 512).toBe(0);
    await writeFile(join(dir, 'a.cpio'), a);
    const {stdout} = await runTool('cpio', ['-itv', '--quiet', '-F', join(dir, 'a.cpio')]);
    const lines = stdout.toString().trim().split('\n');
    expect(lines.map((l) => l.split(/\s+/).pop())).toEqual(['bin', 'busybox', 'dev', 'dev/console', 'init']);
    expect(lines[3]).toMatch(/^crw------- +1 root +root +5, +1 .* dev\/console$/);
    expect(lines[4]).toMatch(/^-rwxr-xr-x +1 root +root +10 .* init$/);
    expect(lines[1]).toMatch(/^lrwxrwxrwx .* bin\/sh -> busybox$/);
    const gz1 = await compress(a, 'gzip');
    const gz2 = await compress(a, 'gzip');
    expect(sha(gz1)).toBe(sha(gz2));
    const zst = await compress(a, 'zstd');
    expect(zst.readUInt32LE(0)).toBe(0xfd2fb528);
  });

  it('refuses the same path twice', () => {
    expect(() =>
      cpioArchive(
        [
          {type: 'dir', path: 'x', mode: 0o755},
          {type: 'dir', path: '/x', mode: 0o755},
        ],
        0,
      ),
    ).toThrow(/x added twice/);
  });
});

describe.skipIf(!haveAlpineTestData())('ELF closure on real Alpine binaries', () => {
  it('finds busybox and apk need the musl loader and libcrypto/libz/libapk', async () => {
    const root = join(dir, 'root');
    await extractTar(join(alpineTestData, 'minirootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz'), root);
    const bb = await readElfDeps(join(root, 'bin/busybox'));
    expect(bb?.interpreter).toBe('/lib/ld-musl-x86_64.so.1');
    expect(bb?.needed).toContain('libc.musl-x86_64.so.1');
    const closure = await elfClosure(root, ['/bin/sh', '/sbin/apk']);
    expect(closure).toContain('/bin/sh');
    expect(closure).toContain('/bin/busybox');
    expect(closure).toContain('/lib/ld-musl-x86_64.so.1');
    expect(closure).toContain('/lib/libc.musl-x86_64.so.1'); // symlink to the loader
    expect(closure.some((p) => /^\/(usr\/)?lib\/libapk\.so/.test(p))).toBe(true);
    expect(closure.some((p) => /\/libcrypto\.so\.3$/.test(p))).toBe(true);
    expect(await readElfDeps(join(root, 'etc/passwd'))).toBeUndefined();
  });

  it('names a missing library', async () => {
    const root = join(dir, 'root');
    await extractTar(join(alpineTestData, 'minirootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz'), root);
    await rm(join(root, 'lib/ld-musl-x86_64.so.1'));
    await expect(elfClosure(root, ['/bin/busybox'])).rejects.toThrow(/ld-musl-x86_64\.so\.1 is not in the root folder/);
  });
});

describe.skipIf(!haveAlpineTestData())('kernel module selection from mkinitfs features', () => {
  async function fakeKernel(): Promise<string> {
    const k = join(dir, 'lib/modules/6.1.0-test');
    const mods = [
      'kernel/fs/ext4/ext4.ko',
      'kernel/fs/jbd2/jbd2.ko',
      'kernel/lib/crc16.ko',
      'kernel/crypto/crc32c_generic.ko',
      'kernel/fs/squashfs/squashfs.ko',
      'kernel/fs/overlayfs/overlay.ko',
      'kernel/drivers/block/loop.ko',
      'kernel/drivers/block/virtio_blk.ko',
      'kernel/drivers/net/wireless/iwlwifi.ko',
      'kernel/sound/snd.ko',
    ];
    for (const m of mods) {
      await mkdir(join(k, m, '..'), {recursive: true});
      const info = m.includes('iwlwifi') ? 'license=GPL\0firmware=iwlwifi-1.ucode\0firmware=iwlwifi-2.ucode\0' : 'license=GPL\0';
      await writeFile(join(k, m), Buffer.concat([Buffer.from('\x7fELF-fake\0'), Buffer.from(info)]));
    }
    await writeFile(
      join(k, 'modules.dep'),
      mods.map((m) => `${m}:${m.endsWith('ext4.ko') ? ' kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko' : ''}`).join('\n') + '\n',
    );
    await writeFile(join(k, 'modules.softdep'), 'softdep ext4 pre: crc32c\n');
    return k;
  }

  it('matches feature globs (files and folders) and closes over modules.dep and softdeps', async () => {
    const tree = await readModuleTree(await fakeKernel());
    const features = join(alpineTestData, 'mkinitfs-3.13.0/features.d');
    const picked = matchModuleGlobs(tree, await featureGlobs(dirname(features), 'features.d', ['base', 'ext4', 'squashfs']));
    // ext4.modules lists kernel/crypto/crc32* itself.
    expect(picked).toEqual([
      'kernel/crypto/crc32c_generic.ko',
      'kernel/drivers/block/loop.ko',
      'kernel/fs/ext4/ext4.ko',
      'kernel/fs/overlayfs/overlay.ko',
      'kernel/fs/squashfs/squashfs.ko',
    ]);
    expect(moduleClosure(tree, picked)).toEqual([
      'kernel/crypto/crc32c_generic.ko',
      'kernel/drivers/block/loop.ko',
      'kernel/fs/ext4/ext4.ko',
      'kernel/fs/jbd2/jbd2.ko',
      'kernel/fs/overlayfs/overlay.ko',
      'kernel/fs/squashfs/squashfs.ko',
      'kernel/lib/crc16.ko',
    ]);
    await expect(featureGlobs(dirname(features), 'features.d', ['no-such-feature'])).rejects.toThrow(/mkinitfs feature no-such-feature/);
    expect(moduleFirmware(await readFile(join(tree.dir, 'kernel/drivers/net/wireless/iwlwifi.ko')))).toEqual(['iwlwifi-1.ucode', 'iwlwifi-2.ucode']);
  });
});

describe('squashfs without root', () => {
  async function tree(base: string, mtime: number): Promise<string> {
    const r = join(base, 'root');
    await mkdir(join(r, 'etc'), {recursive: true});
    await mkdir(join(r, 'bin'), {recursive: true});
    await writeFile(join(r, 'etc/shadow'), 'root:*::0:::::\n');
    await writeFile(join(r, 'bin/busybox'), 'bb');
    await chmod(join(r, 'bin/busybox'), 0o644); // on disk widened; the manifest says 0755
    await symlink('busybox', join(r, 'bin/sh'));
    await utimes(join(r, 'etc/shadow'), mtime, mtime);
    return r;
  }

  it('applies owners, modes and device nodes from definitions, reproducibly', async () => {
    const ownership = new Map([
      ['etc/shadow', {mode: 0o640, uid: 0, gid: 42}],
      ['bin/busybox', {mode: 0o755, uid: 0, gid: 0}],
    ]);
    const specials = [{path: 'dev/console', type: 'char' as const, major: 5, minor: 1, mode: 0o600, uid: 0, gid: 0}];
    await mkdir(join(dir, 'one/root/dev'), {recursive: true});
    await mkdir(join(dir, 'two/root/dev'), {recursive: true});
    const r1 = await tree(join(dir, 'one'), 1500000000);
    const r2 = await tree(join(dir, 'two'), 1600000000);
    const o1 = join(dir, 'one.sqfs');
    const o2 = join(dir, 'two.sqfs');
    await makeSquashfs(r1, o1, {epoch: 1700000000, compression: 'zstd', ownership, specials}, join(dir, 'one'));
    await makeSquashfs(r2, o2, {epoch: 1700000000, compression: 'zstd', ownership, specials}, join(dir, 'two'));
    expect(sha(await readFile(o1))).toBe(sha(await readFile(o2)));
    const {stdout} = await runTool('unsquashfs', ['-lln', o1]);
    const text = stdout.toString();
    expect(text).toMatch(/-rw-r----- 0\/42 .* squashfs-root\/etc\/shadow/);
    expect(text).toMatch(/-rwxr-xr-x 0\/0 .* squashfs-root\/bin\/busybox/);
    expect(text).toMatch(/crw------- 0\/0 +5, +1 .* squashfs-root\/dev\/console/);
    expect(text).toMatch(/lrwxrwxrwx 0\/0 .* squashfs-root\/bin\/sh -> busybox/);
  });
});
