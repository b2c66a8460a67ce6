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
  async run(ctx) {
    const file = async (name: string, input: string): Promise<TarEntry> => {
      const source = ctx.inputs[input]![0]!;
      return {type: 'file', path: name, mode: 0o644, source, size: (await stat(source)).size};
    };
    const entries: TarEntry[] = [
      await file('kernel', 'kernel'),
      await file('kernel.version', 'version'),
      await file('modloop', 'modloop'),
      await file('squashfs', 'squashfs'),
      {type: 'data', path: 'squashfs.alpine_version', mode: 0o644, data: Buffer.from(`${String(ctx.params['alpineRelease'])}\n`)},
      await file('initramfs', 'initramfs'),
      await file('System.map', 'systemMap'),
      await file('config', 'config'),
    ];
    await writeTar(ctx.outputs['ostar']!, entries, ctx.sourceDateEpoch);
  },
});
