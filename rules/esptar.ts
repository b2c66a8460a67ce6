import {copyFile, mkdir, writeFile} from 'node:fs/promises';
import {basename, join, resolve} from 'node:path';
import {PsyError} from '../src/errors.js';
import {defineRule} from '../src/engine/rule.js';
import {buildEspTree} from '../src/boot/esp-tree.js';
import {directoryEntries, writeTar} from '../src/image/tar.js';
import {tools} from './tools.js';

/**
 * The ESP tarball: GRUB's EFI binary (grub-mkimage, modules built in), the static
 * grub.cfg that takes the slot from the GRUB environment block, optional EFI programs
 * and manifest.json listing them.
 *
 * inputs: extras (EFI program files, optional). params: extraPrograms ([{file, as, title}]:
 * the file as the config names it, its name on the ESP, its menu title), timeoutSec, kernelArgs.
 */
export default defineRule({
  name: 'esptar',
  version: 2,
  module: import.meta.url,
  tools: [tools.grubMkimage],
  async run(ctx) {
    const programs = (ctx.params['extraPrograms'] ?? []) as Array<{file: string; as: string; title: string}>;
    const extraProgramFiles: Record<string, string> = {};
    // each program is copied under its ESP name: the tree takes names from the files
    const named = join(ctx.tmpDir, 'extras');
    await mkdir(named, {recursive: true});
    for (const p of programs) {
      const src = (ctx.inputs['extras'] ?? []).find((f) => f === resolve(ctx.root, p.file));
      if (!src) throw new PsyError('missing-input', `settings.alpine.efiExtras: ${p.file} is not among the inputs`);
      if (extraProgramFiles[join(named, p.as)] !== undefined) throw new PsyError('bad-config', `settings.alpine.efiExtras: two programs are named ${p.as} on the ESP`);
      await copyFile(src, join(named, p.as));
      extraProgramFiles[join(named, p.as)] = p.title;
    }
    const tree = join(ctx.tmpDir, 'esp');
    const kernelArgs = ctx.params['kernelArgs'];
    const timeoutSec = ctx.params['timeoutSec'];
    await buildEspTree({
      outDir: tree,
      extraProgramFiles,
      sourceDateEpoch: ctx.sourceDateEpoch,
      ...(typeof kernelArgs === 'string' && kernelArgs ? {kernelArgs} : {}),
      ...(typeof timeoutSec === 'number' ? {timeoutSec} : {}),
    });
    const manifest = {version: 1, extra_programs: Object.fromEntries(Object.entries(extraProgramFiles).map(([f, t]) => [basename(f), t]).sort())};
    await writeFile(join(tree, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    await writeTar(ctx.outputs['esptar']!, await directoryEntries(tree), ctx.sourceDateEpoch);
  },
});
