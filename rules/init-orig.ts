import {copyFileFromRoot} from '../src/apk/root-path.js';
import {defineRule} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';

/** The upstream initramfs-init from the installed (locked) mkinitfs package. */
export default defineRule({
  name: 'init-orig',
  version: 1,
  module: import.meta.url,
  inputs: {root: 'file'},
  outputs: {init: 'file'},
  async run(ctx) {
    const root = ctx.inputs.root;
    // A symlink in the package is followed inside the root, never into the build host.
    if (!(await copyFileFromRoot(root, '/usr/share/mkinitfs/initramfs-init', ctx.outputs.init, 'init-orig'))) {
      throw new PsyError('missing-file', `the installed root has no usr/share/mkinitfs/initramfs-init; add mkinitfs to settings.alpine.world`);
    }
  },
});
