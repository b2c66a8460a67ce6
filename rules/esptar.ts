import {writeFile} from 'node:fs/promises';
import {basename, join} from 'node:path';
import {defineRule, param} from '../src/engine/rule.js';
import {buildEspTree} from '../src/boot/esp-tree.js';
import {directoryEntries, writeTar} from '../src/image/tar.js';
import {tools} from './tools.js';

/**
 * The ESP tarball: GRUB's EFI binary (grub-mkimage, modules built in), the static
 * grub.cfg that takes the slot from the GRUB environment block, optional EFI programs
 * and manifest.json listing them.
 *
 * inputs: extras (EFI program files, optional). params: extraPrograms ({file name: title}),
 * timeoutSec, kernelArgs.
 */
export default defineRule({
  name: 'esptar',
  version: 1,
  module: import.meta.url,
  tools: [tools.grubMkimage],
  inputs: {extras: 'files?'},
  params: {extraPrograms: param<Record<string, string>>(), timeoutSec: 'number?', kernelArgs: 'string?'},
  outputs: {esptar: 'file'},
  async run(ctx) {
    const titles = ctx.params.extraPrograms;
    const extraProgramFiles: Record<string, string> = {};
    for (const f of ctx.inputs.extras) extraProgramFiles[f] = titles[basename(f)] ?? basename(f);
    const tree = join(ctx.tmpDir, 'esp');
    const kernelArgs = ctx.params.kernelArgs;
    const timeoutSec = ctx.params.timeoutSec;
    await buildEspTree({
      outDir: tree,
      extraProgramFiles,
      sourceDateEpoch: ctx.sourceDateEpoch,
      ...(typeof kernelArgs === 'string' && kernelArgs ? {kernelArgs} : {}),
      ...(typeof timeoutSec === 'number' ? {timeoutSec} : {}),
    });
    const manifest = {
      version: 1,
      extra_programs: Object.fromEntries(
        Object.entries(extraProgramFiles)
          .map(([f, t]) => [basename(f), t])
          .sort(),
      ),
    };
    await writeFile(join(tree, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
    await writeTar(ctx.outputs.esptar, await directoryEntries(tree), ctx.sourceDateEpoch);
  },
});
