import {copyFile, cp, mkdir, readFile, readdir} from 'node:fs/promises';
import {dirname, join, relative} from 'node:path';
import {resolveInRoot} from '../src/apk/root-path.js';
import {defineRule, param} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';
import {moduleFirmware} from '../src/image/kmod.js';
import {makeSquashfs, type SquashfsCompression} from '../src/image/squashfs.js';
import {tools} from './tools.js';

/**
 * The modloop: a squashfs of the kernel modules (modules/<version>/) and the firmware
 * files they reference (modules/firmware/), as Alpine lays it out. The init mounts it
 * at /.modloop.
 *
 * inputs: modules (kernel target's module tree), version, firmware (optional: the root
 * holding lib/firmware). params: compression, level.
 */
export default defineRule({
  name: 'modloop',
  version: 1,
  module: import.meta.url,
  tools: [tools.mksquashfs],
  inputs: {modules: 'file', version: 'file', firmware: 'file?'},
  params: {compression: param.optional<SquashfsCompression>(), level: 'number?'},
  outputs: {modloop: 'file'},
  async run(ctx) {
    const version = (await readFile(ctx.inputs.version, 'utf8')).trim();
    const stage = join(ctx.tmpDir, 'modloop');
    const mods = join(ctx.inputs.modules, 'lib/modules', version);
    await mkdir(join(stage, 'modules'), {recursive: true});
    await cp(mods, join(stage, 'modules', version), {recursive: true});
    const fwRoot = ctx.inputs.firmware;
    if (fwRoot) {
      const wanted = new Set<string>();
      const walk = async (dir: string): Promise<void> => {
        for (const e of await readdir(dir, {withFileTypes: true})) {
          const p = join(dir, e.name);
          if (e.isDirectory()) await walk(p);
          else if (e.name.endsWith('.ko')) {
            for (const f of moduleFirmware(await readFile(p))) {
              // A name is a path below lib/firmware; one that climbs or is absolute is hostile.
              if (f === '' || f.startsWith('/') || f.split('/').includes('..')) {
                throw new PsyError('bad-firmware-name', `modloop: ${relative(mods, p)} asks for firmware '${f}', which is not a path below lib/firmware`);
              }
              wanted.add(f);
            }
          }
        }
      };
      await walk(mods);
      for (const f of [...wanted].sort()) {
        // Resolved inside the firmware root: a package symlink never reaches the build host.
        const src = await resolveInRoot(fwRoot, `/lib/firmware/${f}`, 'modloop');
        if (!src?.stat.isFile()) continue;
        const dst = join(stage, 'modules/firmware', f);
        await mkdir(dirname(dst), {recursive: true});
        await copyFile(src.host, dst);
      }
    }
    const compression = ctx.params.compression ?? 'zstd';
    const level = ctx.params.level;
    await makeSquashfs(
      stage,
      ctx.outputs.modloop,
      {
        epoch: ctx.sourceDateEpoch,
        compression,
        ...(typeof level === 'number' ? {level} : {}),
      },
      ctx.tmpDir,
      ctx.run,
    );
  },
});
