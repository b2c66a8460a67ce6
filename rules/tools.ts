import type {ToolSpec} from '../src/engine/rule.js';

/** External programs the rules run; their versions join the action keys. */
export const tools = {
  patch: {command: 'patch', versionArgs: ['--version'], debianPackage: 'patch'},
  depmod: {command: 'depmod', versionArgs: ['--version'], debianPackage: 'kmod'},
  mksquashfs: {command: 'mksquashfs', versionArgs: ['-version'], debianPackage: 'squashfs-tools'},
  zstd: {command: 'zstd', versionArgs: ['--version'], debianPackage: 'zstd'},
  xz: {command: 'xz', versionArgs: ['--version'], debianPackage: 'xz-utils'},
  grubMkimage: {command: 'grub-mkimage', versionArgs: ['--version'], debianPackage: 'grub-efi-amd64-bin'},
  sfdisk: {command: 'sfdisk', versionArgs: ['--version'], debianPackage: 'fdisk'},
  mkfsVfat: {command: 'mkfs.vfat', versionArgs: ['--help'], debianPackage: 'dosfstools'},
  mcopy: {command: 'mcopy', versionArgs: ['--version'], debianPackage: 'mtools'},
  mke2fs: {command: 'mke2fs', versionArgs: ['-V'], debianPackage: 'e2fsprogs'},
  debugfs: {command: 'debugfs', versionArgs: ['-V'], debianPackage: 'e2fsprogs'},
  cp: {command: 'cp', versionArgs: ['--version'], debianPackage: 'coreutils'},
} satisfies Record<string, ToolSpec>;
