import {relative} from 'node:path';
import {defineRule} from '../src/engine/rule.js';
import {applyInitPatch} from '../src/image/init-patch.js';
import {tools} from './tools.js';

/**
 * Upstream init + alpine/initramfs-init.patch → the psyopsOS init. Applied forward only:
 * an upstream init that already holds the patch (or part of it) is refused, not reversed.
 */
export default defineRule({
  name: 'init-patch',
  // 2: applied with --forward (an init a cached build reversed is made again, and refused)
  version: 2,
  module: import.meta.url,
  tools: [tools.patch],
  inputs: {orig: 'file', patch: 'file'},
  outputs: {init: 'file'},
  async run(ctx) {
    await applyInitPatch(ctx.inputs.orig, ctx.inputs.patch, ctx.outputs.init, ctx.tmpDir, ctx.run, relative(ctx.root, ctx.inputs.patch));
  },
});
