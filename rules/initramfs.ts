import {readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {defineRule, param} from '../src/engine/rule.js';
import type {Compression} from '../src/image/cpio.js';
import {buildInitramfs} from '../src/image/initramfs.js';
import {tools} from './tools.js';

/**
 * The initramfs: the psyopsOS init, busybox & co. from the installed root with their
 * library closure, the kernel modules of the mkinitfs features (features.d of the
 * installed mkinitfs), device nodes; cpio newc, compressed.
 *
 * inputs: init, root (installed root), modules, version.
 * params: features (string[]), extraModules (string[]), compression.
 */
export default defineRule({
  name: 'initramfs',
  version: 1,
  module: import.meta.url,
  tools: [tools.depmod, tools.zstd, tools.xz],
  inputs: {init: 'file', root: 'file', modules: 'file', version: 'file'},
  params: {features: 'strings', extraModules: 'strings?', compression: param.optional<Compression>()},
  outputs: {initramfs: 'file'},
  async run(ctx) {
    const version = (await readFile(ctx.inputs.version, 'utf8')).trim();
    const root = ctx.inputs.root;
    const r = await buildInitramfs(
      {
        root,
        init: ctx.inputs.init,
        modulesDir: join(ctx.inputs.modules, 'lib/modules', version),
        kernelVersion: version,
        featuresDir: '/etc/mkinitfs/features.d',
        features: [...ctx.params.features],
        extraModules: [...(ctx.params.extraModules ?? [])],
        compression: ctx.params.compression ?? 'gzip',
        epoch: ctx.sourceDateEpoch,
        requiredFiles: ['/bin/busybox', '/sbin/nlplug-findfs'],
      },
      ctx.outputs.initramfs,
      ctx.tmpDir,
      ctx.run,
    );
    ctx.log(`${r.modules.length} modules, ${r.files.length} files`);
  },
});
