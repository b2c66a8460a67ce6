/**
 * The one table of external programs psy runs: how each prints its version (which joins
 * a rule's action key) and which Debian package provides it (named when it is missing).
 * Rules take their ToolSpecs from here (rules/tools.ts); the runner (./run.ts) reads the
 * package for its "not found" error. Nothing else may keep its own list.
 */
import {PsyError} from '../errors.js';
export interface ToolInfo {
  /** Executable name looked up on PATH. */
  readonly command: string;
  /** Arguments that make it print its version, e.g. ['-version']. */
  readonly versionArgs: readonly string[];
  /** The Debian package whose installation makes the command work for psy. */
  readonly debianPackage: string;
}

const entries: ReadonlyArray<readonly [command: string, versionArgs: readonly string[], debianPackage: string]> = [
  ['age', ['--version'], 'age'],
  ['blkid', ['--version'], 'util-linux'],
  ['blockdev', ['--version'], 'util-linux'],
  ['cp', ['--version'], 'coreutils'],
  ['cpio', ['--version'], 'cpio'],
  ['debugfs', ['-V'], 'e2fsprogs'],
  ['depmod', ['--version'], 'kmod'],
  ['diff', ['--version'], 'diffutils'],
  ['e2fsck', ['-V'], 'e2fsprogs'],
  // The program is in grub-common, but psy builds x86_64-efi images: their modules come
  // from grub-efi-amd64-bin, which depends on grub-common, so that one package is enough.
  ['grub-mkimage', ['--version'], 'grub-efi-amd64-bin'],
  ['gzip', ['--version'], 'gzip'],
  ['mcopy', ['--version'], 'mtools'],
  ['mdel', ['--version'], 'mtools'],
  ['mdeltree', ['--version'], 'mtools'],
  ['mdir', ['--version'], 'mtools'],
  ['minfo', ['--version'], 'mtools'],
  ['mke2fs', ['-V'], 'e2fsprogs'],
  ['mkfs.vfat', ['--help'], 'dosfstools'],
  ['mksquashfs', ['-version'], 'squashfs-tools'],
  ['mmd', ['--version'], 'mtools'],
  ['mmove', ['--version'], 'mtools'],
  ['modinfo', ['--version'], 'kmod'],
  ['mshowfat', ['--version'], 'mtools'],
  ['nebula-cert', ['-version'], 'nebula'],
  ['patch', ['--version'], 'patch'],
  ['qemu-system-x86_64', ['--version'], 'qemu-system-x86'],
  ['sfdisk', ['--version'], 'fdisk'],
  ['ssh', ['-V'], 'openssh-client'],
  // ssh-keygen has no version flag (this prints its usage); `ssh -V` names the package's version
  ['ssh-keygen', ['-V'], 'openssh-client'],
  ['unsquashfs', ['-version'], 'squashfs-tools'],
  ['xz', ['--version'], 'xz-utils'],
  ['zstd', ['--version'], 'zstd'],
];

const table: ReadonlyMap<string, ToolInfo> = new Map(
  entries.map(([command, versionArgs, debianPackage]) => [command, Object.freeze({command, versionArgs, debianPackage})]),
);

/** Every tool psy knows, sorted by command. */
export function knownTools(): ToolInfo[] {
  return [...table.values()];
}

/** The table's entry for a command; a rule naming one the table lacks gets one line. */
export function tool(command: string): ToolInfo {
  const t = table.get(command);
  if (t === undefined) throw new PsyError('unknown-tool', `${command} is not in the tool table (src/tools/table.ts): add it there with its Debian package`);
  return t;
}

/** The Debian package providing `command`, if the table knows it. */
export function debianPackageOf(command: string): string | undefined {
  return table.get(command)?.debianPackage;
}
