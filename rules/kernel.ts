import {copyFile, mkdir, readFile, readdir, writeFile} from 'node:fs/promises';
import {dirname, join} from 'node:path';
import {gunzipSync} from 'node:zlib';
import {copyFileFromRoot, readFileInRoot, readdirInRoot, resolveInRoot} from '../src/apk/root-path.js';
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
  inputs: {root: 'file'},
  params: {flavor: 'string'},
  outputs: {kernel: 'file', systemMap: 'file', config: 'file', version: 'file', modules: 'dir'},
  async run(ctx) {
    const root = ctx.inputs.root;
    const flavor = ctx.params.flavor;
    const what = `kernel (linux-${flavor})`;
    // Every path is resolved inside the installed root: a package symlink never reaches
    // a file of the build host.
    const need = async (name: string, out: string) => {
      if (!(await copyFileFromRoot(root, `/boot/${name}`, out, what))) {
        throw new PsyError('missing-file', `boot/${name} is not in the installed linux-${flavor} package`);
      }
    };
    await need(`vmlinuz-${flavor}`, ctx.outputs.kernel);
    await need(`System.map-${flavor}`, ctx.outputs.systemMap);
    await need(`config-${flavor}`, ctx.outputs.config);
    const versions = ((await readdirInRoot(root, '/lib/modules', what))?.entries ?? []).map((e) => e.name).sort();
    if (versions.length !== 1) {
      throw new PsyError('kernel-modules', `expected one lib/modules/<version> in linux-${flavor}, found ${versions.length ? versions.join(', ') : 'none'}`);
    }
    const version = versions[0]!;
    await writeFile(ctx.outputs.version, version + '\n');
    const srcDir = await resolveInRoot(root, `/lib/modules/${version}`, what);
    if (!srcDir?.stat.isDirectory()) throw new PsyError('kernel-modules', `${what}: lib/modules/${version} is not a folder`);
    // The real folder: below it the walk takes only real folders and regular files.
    const src = srcDir.host;
    const dst = join(ctx.outputs.modules, 'lib/modules', version);
    await mkdir(dst, {recursive: true});
    let modules = 0;
    const walk = async (rel: string): Promise<void> => {
      for (const e of (await readdir(join(src, rel), {withFileTypes: true})).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          await walk(r);
          continue;
        }
        if (!e.isFile() || /^modules\./.test(r)) continue;
        await mkdir(dirname(join(dst, r)), {recursive: true});
        if (/\.ko(\.(gz|xz|zst))?$/.test(r)) modules++;
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
    const order = (await readFileInRoot(root, `${srcDir.path}/modules.order`, what))?.toString('utf8');
    const listed = order?.split('\n').filter((l) => l.trim() !== '').length ?? 0;
    if (listed > 0 && modules === 0) {
      // An initramfs and a modloop without the modules the kernel was built with do not boot.
      throw new PsyError('kernel-modules', `${what}: lib/modules/${version}/modules.order lists ${listed} modules, but the package holds no module files`);
    }
    for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
      await copyFileFromRoot(root, `${srcDir.path}/${f}`, join(dst, f), what);
    }
    await ctx.run('depmod', ['-b', ctx.outputs.modules, version], {captureStdout: true});
  },
});
