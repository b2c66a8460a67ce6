import {stat} from 'node:fs/promises';
import {defineRule} from '../src/engine/rule.js';
import {writeTar, type TarEntry} from '../src/image/tar.js';

/**
 * The OS tarball installed into an A/B slot, members in the original's order: kernel,
 * kernel.version, modloop, squashfs, squashfs.alpine_version, initramfs, System.map,
 * config. Uncompressed (the payload is compressed already), root-owned, fixed mtime.
 *
 * params: alpineRelease.
 */
export default defineRule({
  name: 'ostar',
  version: 1,
  module: import.meta.url,
  inputs: {kernel: 'file', version: 'file', systemMap: 'file', config: 'file', modloop: 'file', squashfs: 'file', initramfs: 'file'},
  params: {alpineRelease: 'string'},
  outputs: {ostar: 'file'},
  async run(ctx) {
    const file = async (name: string, source: string): Promise<TarEntry> => {
      return {type: 'file', path: name, mode: 0o644, source, size: (await stat(source)).size};
    };
    const entries: TarEntry[] = [
      await file('kernel', ctx.inputs.kernel),
      await file('kernel.version', ctx.inputs.version),
      await file('modloop', ctx.inputs.modloop),
      await file('squashfs', ctx.inputs.squashfs),
      {type: 'data', path: 'squashfs.alpine_version', mode: 0o644, data: Buffer.from(`${ctx.params.alpineRelease}\n`)},
      await file('initramfs', ctx.inputs.initramfs),
      await file('System.map', ctx.inputs.systemMap),
      await file('config', ctx.inputs.config),
    ];
    await writeTar(ctx.outputs.ostar, entries, ctx.sourceDateEpoch);
  },
});
