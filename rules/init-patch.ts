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
  async run(ctx) {
    const patch = ctx.inputs['patch']![0]!;
    await applyInitPatch(ctx.inputs['orig']![0]!, patch, ctx.outputs['init']!, ctx.tmpDir, ctx.run, relative(ctx.root, patch));
  },
});
