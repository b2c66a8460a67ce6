import {createHash} from 'node:crypto';
import {copyFile, mkdir, readFile, utimes, writeFile} from 'node:fs/promises';
import {basename, join} from 'node:path';
import {runTool} from '../tools/run.js';
import {EFI_BOOT_PATH, GRUB_DIR_PREFIX, GRUB_MODULES, grubCfg, type GrubCfgOptions} from './grub-cfg.js';

export interface EspTreeOptions extends GrubCfgOptions {
  /** Folder to fill (created). Its content is what goes into the ESP tarball. */
  readonly outDir: string;
  /** EFI programs to offer in the menu: path on the build host → menu title. */
  readonly extraProgramFiles?: Readonly<Record<string, string>>;
  /** mtime of every file written (SOURCE_DATE_EPOCH), for reproducible tarballs. */
  readonly sourceDateEpoch?: number;
  /** Folder holding GRUB's x86_64-efi modules (default: grub-mkimage's own). */
  readonly grubModuleDir?: string;
}

export interface EspTree {
  /** `grub-<id>`: the per-version directory, also BOOTX64.EFI's prefix. */
  readonly grubDir: string;
  /** Relative paths of every file written, sorted. */
  readonly files: readonly string[];
}

/**
 * Lays out an ESP version: `EFI/BOOT/BOOTX64.EFI` (grub-mkimage, every module built in,
 * prefix `/grub-<id>`) and `grub-<id>/grub.cfg` plus the extra EFI programs. The id is a
 * hash of what the directory holds, so a new ESP version is written beside the old one
 * and the rename of BOOTX64.EFI is the single switch between them.
 */
export async function buildEspTree(options: EspTreeOptions): Promise<EspTree> {
  const extras: Record<string, string> = {};
  const extraBytes: Array<[string, Buffer]> = [];
  for (const [path, title] of Object.entries(options.extraProgramFiles ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const name = basename(path);
    extras[name] = title;
    extraBytes.push([name, await readFile(path)]);
  }
  const cfg = grubCfg({...options, extraPrograms: extras});
  const grubVersion = (await runTool('grub-mkimage', ['--version'])).stdout.toString('utf8').trim();
  const h = createHash('sha256');
  h.update(grubVersion + '\0' + GRUB_MODULES.join(' ') + '\0' + cfg);
  for (const [name, bytes] of extraBytes) h.update(`\0${name}\0`).update(bytes);
  const grubDir = GRUB_DIR_PREFIX + h.digest('hex').slice(0, 12);

  const efi = join(options.outDir, ...EFI_BOOT_PATH.split('/').filter(Boolean));
  await mkdir(join(options.outDir, 'EFI', 'BOOT'), {recursive: true});
  await mkdir(join(options.outDir, grubDir), {recursive: true});
  const args = ['-O', 'x86_64-efi', '-p', `/${grubDir}`, '-o', efi];
  if (options.grubModuleDir) args.push('-d', options.grubModuleDir);
  await runTool('grub-mkimage', [...args, ...GRUB_MODULES]);
  await writeFile(join(options.outDir, grubDir, 'grub.cfg'), cfg);
  for (const [name] of extraBytes) {
    const src = Object.keys(options.extraProgramFiles ?? {}).find((p) => basename(p) === name)!;
    await copyFile(src, join(options.outDir, grubDir, name));
  }
  const files = [EFI_BOOT_PATH.slice(1), `${grubDir}/grub.cfg`, ...extraBytes.map(([n]) => `${grubDir}/${n}`)].sort();
  if (options.sourceDateEpoch !== undefined) {
    for (const f of files) await utimes(join(options.outDir, f), options.sourceDateEpoch, options.sourceDateEpoch);
  }
  return {grubDir, files};
}
