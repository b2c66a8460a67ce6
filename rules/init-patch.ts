import {relative} from 'node:path';
import {defineRule} from '../src/engine/rule.js';
import {applyInitPatch} from '../src/image/init-patch.js';
import {tools} from './tools.js';

/** Upstream init + alpine/initramfs-init.patch → the psyopsOS init. */
export default defineRule({
  name: 'init-patch',
  version: 1,
  module: import.meta.url,
  tools: [tools.patch],
  async run(ctx) {
    const patch = ctx.inputs['patch']![0]!;
    await applyInitPatch(ctx.inputs['orig']![0]!, patch, ctx.outputs['init']!, ctx.tmpDir, ctx.run, relative(ctx.root, patch));
  },
});
