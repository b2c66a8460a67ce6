import {chmod} from 'node:fs/promises';
import {defineRule} from '../src/engine/rule.js';
import {psyopsLabels, writePartition} from '../src/disk/index.js';
import {tools} from './tools.js';

/**
 * A node's disk image: the generic image with the node's secrets tarball written into
 * its psyops-secret partition (decision 9: a node is the generic image plus its secret
 * partition). The copy keeps the holes (cp --sparse=always), so a node image costs the
 * OS's bytes once more and one small mke2fs, not a whole image build. Its filesystem ids
 * come from the image seed and the node's name. 0600: it holds the node's keys.
 *
 * inputs: image (the generic diskimg), sectar. params: node, seed.
 */
export default defineRule({
  name: 'node-image',
  version: 1,
  module: import.meta.url,
  tools: [tools.cp, tools.sfdisk, tools.mke2fs, tools.debugfs],
  inputs: {image: 'file', sectar: 'file'},
  params: {node: 'string', seed: 'string'},
  outputs: {image: 'file'},
  async run(ctx) {
    const out = ctx.outputs.image;
    await ctx.run('cp', ['--sparse=always', ctx.inputs.image, out]);
    await chmod(out, 0o600);
    await writePartition(
      out,
      psyopsLabels.secret,
      {fs: 'ext4', content: {tar: ctx.inputs.sectar}, epoch: ctx.sourceDateEpoch, seed: `${ctx.params.seed}/${ctx.params.node}`},
      ctx.run,
    );
  },
});
