import {readFile, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {defineRule, param} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';
import {formatGrubEnv} from '../src/boot/grubenv.js';
import {ENV_DEFAULT, GRUBENV_MIRROR_PATH, GRUBENV_PATH} from '../src/boot/grub-cfg.js';
import {buildDiskImage, psyopsLabels, psyopsPartitions, type PsyopsSizes} from '../src/disk/index.js';
import {extractTar, parseTar} from '../src/image/tar.js';
import {tools} from './tools.js';

/**
 * The disk image: GPT with the ESP (FAT32, PSYOPSOSEFI; the esptar plus the GRUB
 * environment block choosing slot A), psyops-secret (the sectar when a node is named),
 * psyopsOS-A and psyopsOS-B (ext4, both holding the ostar). No root, no loop devices,
 * sparse, reproducible.
 *
 * inputs: ostar, esptar, sectar (optional). params: sizes ({espMiB, secretMiB, slotMiB}), seed.
 */
export default defineRule({
  name: 'diskimg',
  version: 1,
  module: import.meta.url,
  tools: [tools.sfdisk, tools.mkfsVfat, tools.mcopy, tools.mke2fs, tools.debugfs],
  inputs: {ostar: 'file', esptar: 'file', sectar: 'file?'},
  params: {sizes: param<PsyopsSizes>(), seed: 'string?'},
  outputs: {image: 'file'},
  async run(ctx) {
    const sizes = ctx.params.sizes;
    const ostar = ctx.inputs.ostar;
    let osBytes = 0;
    parseTar(await readFile(ostar), ostar, (m) => (osBytes += Math.ceil(m.size / 4096) * 4096));
    // ext4 needs room for its journal and tables; the slot must also hold an update.
    if (osBytes > sizes.slotMiB * 1048576 * 0.9 - 4 * 1048576) {
      throw new PsyError(
        'slot-too-small',
        `the OS (${(osBytes / 1048576).toFixed(1)} MiB: kernel, initramfs, modloop, squashfs) does not fit a ${sizes.slotMiB} MiB slot; raise settings.alpine.partitions.slotMiB`,
      );
    }
    const esp = join(ctx.tmpDir, 'esp');
    await extractTar(ctx.inputs.esptar, esp);
    // Boot choice: slot A, in the environment block and its known-good mirror.
    const env = formatGrubEnv({[ENV_DEFAULT]: psyopsLabels.a});
    await writeFile(join(esp, GRUBENV_PATH), env);
    await writeFile(join(esp, GRUBENV_MIRROR_PATH), env);
    // One unpacked copy of the OS serves both slots.
    const os = join(ctx.tmpDir, 'os');
    await extractTar(ostar, os);
    const sectar = ctx.inputs.sectar;
    await buildDiskImage(
      ctx.outputs.image,
      {
        seed: ctx.params.seed ?? 'psyopsOS',
        epoch: ctx.sourceDateEpoch,
        partitions: psyopsPartitions(sizes, {
          esp: {dir: esp},
          ...(sectar ? {secret: {tar: sectar}} : {}),
          a: {dir: os},
          b: {dir: os},
        }),
      },
      ctx.run,
    );
  },
});
