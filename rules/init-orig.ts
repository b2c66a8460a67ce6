import {copyFile} from 'node:fs/promises';
import {join} from 'node:path';
import {defineRule} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';

/** The upstream initramfs-init from the installed (locked) mkinitfs package. */
export default defineRule({
  name: 'init-orig',
  version: 1,
  module: import.meta.url,
  async run(ctx) {
    const root = ctx.inputs['root']![0]!;
    const src = join(root, 'usr/share/mkinitfs/initramfs-init');
    try {
      await copyFile(src, ctx.outputs['init']!);
    } catch {
      throw new PsyError('missing-file', `the installed root has no usr/share/mkinitfs/initramfs-init; add mkinitfs to settings.alpine.world`);
    }
  },
});
