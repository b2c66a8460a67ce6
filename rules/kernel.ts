import {copyFile, mkdir, readFile, readdir, writeFile, lstat} from 'node:fs/promises';
import {dirname, join} from 'node:path';
import {gunzipSync} from 'node:zlib';
import {defineRule} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';
import {tools} from './tools.js';

/**
 * The kernel from the installed linux-<flavor> package: vmlinuz, System.map, config,
 * kernel.version, and its module tree (decompressed, re-indexed with depmod) for the
 * initramfs and modloop targets.
 *
 * params: flavor. outputs: kernel, systemMap, config, version, modules (dir: lib/modules/<version>/...)
 */
export default defineRule({
  name: 'kernel',
  version: 1,
  module: import.meta.url,
  tools: [tools.depmod, tools.xz, tools.zstd],
  async run(ctx) {
    const root = ctx.inputs['root']![0]!;
    const flavor = String(ctx.params['flavor']);
    const boot = join(root, 'boot');
    const need = async (name: string, out: string) => {
      try {
        await copyFile(join(boot, name), out);
      } catch {
        throw new PsyError('missing-file', `boot/${name} is not in the installed linux-${flavor} package`);
      }
    };
    await need(`vmlinuz-${flavor}`, ctx.outputs['kernel']!);
    await need(`System.map-${flavor}`, ctx.outputs['systemMap']!);
    await need(`config-${flavor}`, ctx.outputs['config']!);
    const versions = await readdir(join(root, 'lib/modules')).catch(() => [] as string[]);
    if (versions.length !== 1) {
      throw new PsyError('kernel-modules', `expected one lib/modules/<version> in linux-${flavor}, found ${versions.length ? versions.join(', ') : 'none'}`);
    }
    const version = versions[0]!;
    await writeFile(ctx.outputs['version']!, version + '\n');
    const src = join(root, 'lib/modules', version);
    const dst = join(ctx.outputs['modules']!, 'lib/modules', version);
    const walk = async (rel: string): Promise<void> => {
      for (const e of (await readdir(join(src, rel), {withFileTypes: true})).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          await walk(r);
          continue;
        }
        if (!e.isFile() || /^modules\./.test(r)) continue;
        await mkdir(dirname(join(dst, r)), {recursive: true});
        if (/\.ko\.(gz|xz|zst)$/.test(r)) {
          const data = await readFile(join(src, r));
          const plain = r.endsWith('.gz')
            ? gunzipSync(data)
            : (await ctx.run(r.endsWith('.xz') ? 'xz' : 'zstd', ['-dc'], {input: data, captureStdout: true})).stdout;
          await writeFile(join(dst, r.replace(/\.(gz|xz|zst)$/, '')), plain);
        } else await copyFile(join(src, r), join(dst, r));
      }
    };
    await walk('');
    for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
      if (await lstat(join(src, f)).catch(() => undefined)) await copyFile(join(src, f), join(dst, f));
    }
    await ctx.run('depmod', ['-b', ctx.outputs['modules']!, version], {captureStdout: true});
  },
});
