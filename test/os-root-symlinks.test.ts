import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import initOrig from '../rules/init-orig.js';
import kernel from '../rules/kernel.js';
import modloop from '../rules/modloop.js';
import {copyFileFromRoot, readFileInRoot, resolveInRoot} from '../src/apk/root-path.js';
import {runTool} from '../src/tools/run.js';
import {elfClosure} from '../src/image/elf.js';
import {featureFiles} from '../src/image/kmod.js';
import {runRule} from './helpers/rule-context.js';

/**
 * Files of a package-installed root are read as a chroot would: an absolute link target
 * starts at the root, `..` stops at it, so a package symlink never reaches a file of the
 * build host. `host/` beside the root stands for the build host's own files.
 */
let dir: string;
let root: string;
let host: string;
const cleanup: string[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-root-links-'));
  root = join(dir, 'root');
  host = join(dir, 'host');
  mkdirSync(root);
  mkdirSync(host);
  writeFileSync(join(host, 'secret'), 'HOST SECRET');
});
afterEach(() => {
  for (const d of [dir, ...cleanup.splice(0)]) rmSync(d, {recursive: true, force: true});
});

function file(rel: string, text: string): void {
  mkdirSync(dirname(join(root, rel)), {recursive: true});
  writeFileSync(join(root, rel), text);
}

function link(rel: string, target: string): void {
  mkdirSync(dirname(join(root, rel)), {recursive: true});
  symlinkSync(target, join(root, rel));
}

describe('resolveInRoot: symlinks resolved as a chroot would', () => {
  it('starts absolute targets at the root and stops .. at it', async () => {
    file('usr/lib/libz.so.1', 'zlib');
    link('lib', '/usr/lib');
    link('etc/zlink', '../../../../../usr/lib/libz.so.1');
    const a = await resolveInRoot(root, '/lib/libz.so.1', 'test');
    expect(a).toMatchObject({path: '/usr/lib/libz.so.1', host: join(root, 'usr/lib/libz.so.1'), links: ['/lib']});
    expect((await resolveInRoot(root, 'etc/zlink', 'test'))?.path).toBe('/usr/lib/libz.so.1');
    expect((await resolveInRoot(root, '/../../lib/../lib/libz.so.1', 'test'))?.path).toBe('/usr/lib/libz.so.1');
  });

  it('never reaches the host: absolute host paths, .. past the root, symlinked folders', async () => {
    link('etc/shadow', join(host, 'secret'));
    link('etc/up', '../../host/secret');
    link('usr', host); // a folder link to a host folder, used as a parent
    link('lib64', '/usr');
    for (const p of ['/etc/shadow', '/etc/up', '/usr/secret', '/lib64/secret']) {
      expect(await resolveInRoot(root, p, 'test'), p).toBeUndefined();
      expect(await readFileInRoot(root, p, 'test'), p).toBeUndefined();
    }
    expect(await copyFileFromRoot(root, '/usr/secret', join(dir, 'copy'), 'test')).toBe(false);
    expect(existsSync(join(dir, 'copy'))).toBe(false);
  });

  it('refuses a symlink loop and a non-file with one line naming the file', async () => {
    link('a', 'b');
    link('b', '/a');
    const loop = (await readFileInRoot(root, '/a/x', 'kernel (linux-lts)').catch((e: unknown) => e)) as Error;
    expect(loop).toMatchObject({code: 'symlink-loop'});
    expect(loop.message).toMatch(/^kernel \(linux-lts\): \/a\/x in the installed root: too many levels of symbolic links/);
    expect(loop.message).not.toContain('\n');
    mkdirSync(join(root, 'boot'));
    const notFile = (await readFileInRoot(root, '/boot', 'init-orig').catch((e: unknown) => e)) as Error;
    expect(notFile).toMatchObject({code: 'not-a-file', message: 'init-orig: /boot in the installed root is a directory, not a regular file'});
  });
});

describe('rules read installed roots inside the root', () => {
  it('init-orig: a link to a host file is refused; links inside the root are followed', async () => {
    link('usr/share/mkinitfs/initramfs-init', join(host, 'secret'));
    const err = (await runRule(initOrig, {inputs: {root: [root]}, outputs: {init: 'file'}}).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'missing-file'});
    expect(err.message).toContain('usr/share/mkinitfs/initramfs-init');

    rmSync(join(root, 'usr'), {recursive: true});
    file('opt/mkinitfs/initramfs-init', '#!/bin/sh\necho upstream init\n');
    link('usr/share/mkinitfs', '../../../../../opt/mkinitfs');
    const ok = await runRule(initOrig, {inputs: {root: [root]}, outputs: {init: 'file'}});
    cleanup.push(ok.scratch);
    expect(readFileSync(ok.outputs['init']!, 'utf8')).toBe('#!/bin/sh\necho upstream init\n');
  });

  it('kernel: boot files and the module folder are taken from the root, never from the host', async () => {
    const v = '6.1.0-test';
    file('boot/vmlinuz-lts', 'kernel image');
    file('boot/System.map-lts', 'map');
    link('boot/config-lts', join(host, 'secret'));
    file(`usr/lib/modules/${v}/kernel/fs/a.ko`, '\x7fELF-fake\0license=GPL\0');
    link('lib', '/usr/lib'); // usr-merge layout, absolute
    const run = () =>
      runRule(kernel, {
        inputs: {root: [root]},
        params: {flavor: 'lts'},
        outputs: {kernel: 'file', systemMap: 'file', config: 'file', version: 'file', modules: 'dir'},
      });
    const err = (await run().catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'missing-file', message: 'boot/config-lts is not in the installed linux-lts package'});

    rmSync(join(root, 'boot/config-lts'));
    file('etc/kernel-config', 'CONFIG_X=y');
    link('boot/config-lts', '/etc/kernel-config');
    // modules.order pointing at a host file is not copied: it is not in the root
    link(`usr/lib/modules/${v}/modules.order`, join(host, 'secret'));
    const ok = await run();
    cleanup.push(ok.scratch);
    expect(readFileSync(ok.outputs['config']!, 'utf8')).toBe('CONFIG_X=y');
    expect(readFileSync(ok.outputs['version']!, 'utf8')).toBe(`${v}\n`);
    const mods = join(ok.outputs['modules']!, 'lib/modules', v);
    expect(existsSync(join(mods, 'kernel/fs/a.ko'))).toBe(true);
    expect(existsSync(join(mods, 'modules.order'))).toBe(false);
  });

  it('kernel: lib/modules linked to a host folder holds no module version', async () => {
    file('boot/vmlinuz-lts', 'k');
    file('boot/System.map-lts', 'm');
    file('boot/config-lts', 'c');
    mkdirSync(join(host, 'modules/6.1.0-host/kernel'), {recursive: true});
    link('lib/modules', join(host, 'modules'));
    const err = (await runRule(kernel, {
      inputs: {root: [root]},
      params: {flavor: 'lts'},
      outputs: {kernel: 'file', systemMap: 'file', config: 'file', version: 'file', modules: 'dir'},
    }).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'kernel-modules', message: 'expected one lib/modules/<version> in linux-lts, found none'});
  });

  it('modloop: firmware links are followed inside the firmware root only; a climbing firmware name is refused', async () => {
    const v = '6.1.0-test';
    const modules = join(dir, 'modules');
    const ko = join(modules, 'lib/modules', v, 'kernel/drivers/net/wifi.ko');
    mkdirSync(dirname(ko), {recursive: true});
    writeFileSync(ko, '\x7fELF-fake\0license=GPL\0firmware=vendor/good.bin\0firmware=vendor/leak.bin\0');
    writeFileSync(join(dir, 'version'), `${v}\n`);
    file('usr/share/firmware-blobs/good-1.bin', 'GOOD FIRMWARE');
    link('lib/firmware/vendor/good.bin', '/usr/share/firmware-blobs/good-1.bin');
    link('lib/firmware/vendor/leak.bin', join(host, 'secret'));
    const inputs = {modules: [modules], version: [join(dir, 'version')], firmware: [root]};
    const ok = await runRule(modloop, {inputs, params: {compression: 'gzip'}, outputs: {modloop: 'file'}});
    cleanup.push(ok.scratch);
    const x = join(ok.scratch, 'x');
    await runTool('unsquashfs', ['-d', x, ok.outputs['modloop']!]);
    expect(readFileSync(join(x, 'modules/firmware/vendor/good.bin'), 'utf8')).toBe('GOOD FIRMWARE');
    expect(existsSync(join(x, 'modules/firmware/vendor/leak.bin'))).toBe(false);

    writeFileSync(ko, '\x7fELF-fake\0license=GPL\0firmware=../../../host/secret\0');
    const err = (await runRule(modloop, {inputs, params: {compression: 'gzip'}, outputs: {modloop: 'file'}}).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'bad-firmware-name'});
    expect(err.message).toBe(`modloop: kernel/drivers/net/wifi.ko asks for firmware '../../../host/secret', which is not a path below lib/firmware`);
  });

  it('initramfs: the ELF closure does not follow a folder link out of the root', async () => {
    mkdirSync(join(host, 'lib'));
    writeFileSync(join(host, 'lib', 'libx.so'), 'host library');
    link('usr', host);
    link('lib64', '/usr/lib');
    await expect(elfClosure(root, ['/lib64/libx.so'])).rejects.toThrow(/^\/lib64\/libx\.so is not in the root folder$/);
    // inside the root the same layout works, and the links on the way are kept
    rmSync(join(root, 'usr'));
    file('usr/lib/libx.so', 'root library');
    expect(await elfClosure(root, ['/lib64/libx.so'])).toEqual(['/lib64', '/usr/lib/libx.so']);
  });

  it('initramfs: the mkinitfs feature lists are read inside the root', async () => {
    mkdirSync(join(host, 'features.d'));
    writeFileSync(join(host, 'features.d', 'base.files'), '/etc/shadow\n');
    link('etc/mkinitfs/features.d', join(host, 'features.d'));
    expect(await featureFiles(root, '/etc/mkinitfs/features.d', ['base'])).toEqual([]);
    rmSync(join(root, 'etc/mkinitfs/features.d'));
    file('usr/share/mkinitfs/features.d/base.files', '/bin/busybox\n');
    link('etc/mkinitfs/features.d', '/usr/share/mkinitfs/features.d');
    expect(await featureFiles(root, '/etc/mkinitfs/features.d', ['base'])).toEqual(['/bin/busybox']);
  });
});
