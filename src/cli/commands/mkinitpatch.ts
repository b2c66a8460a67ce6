import {copyFile, access} from 'node:fs/promises';
import {isAbsolute, relative, resolve} from 'node:path';
import {build} from '../../engine/build.js';
import {loadConfig} from '../../engine/load-config.js';
import {PsyError} from '../../errors.js';
import {writeInitPatch} from '../../image/init-patch.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

const help = `Usage: psy mkinitpatch [--edit [--force]] [--config FILE]

The two-way workflow for the init patch (settings.alpine.initPatch, default
alpine/initramfs-init.patch):

  psy mkinitpatch --edit   write the patched init (upstream init from the locked
                           mkinitfs + the patch) to <patch>.patched for editing
  psy mkinitpatch          regenerate the patch from the edited <patch>.patched
                           against the upstream init

Options:
      --edit          write the editable copy
      --force         with --edit, overwrite an existing copy
      --config FILE   use FILE instead of build.config.ts`;

function failedMessage(r: Awaited<ReturnType<typeof build>>): string {
  const f = r.failed[0];
  return f ? `${f.target}: ${f.message}` : 'build failed';
}

export const command: Command = {
  name: 'mkinitpatch',
  summary: 'edit the init patch as a patched copy, and regenerate the patch from it',
  help,
  async run(argv, io) {
    const {values} = parseCommandArgs('mkinitpatch', argv, {edit: {type: 'boolean'}, force: {type: 'boolean'}, config: {type: 'string'}}, false);
    const cfg = values.config === undefined ? {} : {configPath: values.config};
    const loaded = await loadConfig({cwd: io.cwd, ...cfg});
    const alpine = (loaded.config.settings?.['alpine'] ?? {}) as {initPatch?: string};
    const patchRel = alpine.initPatch ?? 'alpine/initramfs-init.patch';
    const patch = isAbsolute(patchRel) ? patchRel : resolve(loaded.root, patchRel);
    const edited = patch.replace(/\.patch$/, '') + '.patched';
    const show = (p: string) => relative(io.cwd, p) || p;

    if (values.edit === true) {
      const exists = await access(edited).then(
        () => true,
        () => false,
      );
      if (exists && values.force !== true) {
        throw new PsyError(
          'exists',
          `${show(edited)} exists (it may hold unsaved edits): run psy mkinitpatch to save it into the patch, or --edit --force to replace it`,
        );
      }
      const r = await build({cwd: io.cwd, ...cfg, loaded, targets: ['init']});
      if (!r.ok) throw new PsyError('build-failed', failedMessage(r));
      await copyFile(r.outputs['init']!['init']!, edited);
      writeLine(io.stdout, `wrote ${show(edited)}: edit it, then run psy mkinitpatch`);
      return 0;
    }
    if (
      !(await access(edited).then(
        () => true,
        () => false,
      ))
    ) {
      throw new PsyError('missing-input', `no edited init at ${show(edited)}: run psy mkinitpatch --edit first`);
    }
    const r = await build({cwd: io.cwd, ...cfg, loaded, targets: ['init-orig']});
    if (!r.ok) throw new PsyError('build-failed', failedMessage(r));
    const changed = await writeInitPatch(r.outputs['init-orig']!['init']!, edited, patch);
    writeLine(io.stdout, changed ? `updated ${show(patch)}` : `${show(patch)} unchanged`);
    return 0;
  },
};
