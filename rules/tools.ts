import type {ToolSpec} from '../src/engine/rule.js';
import {tool} from '../src/tools/table.js';

/** External programs the rules run; their versions join the action keys. Entries come from the one tool table. */
export const tools = {
  patch: tool('patch'),
  depmod: tool('depmod'),
  mksquashfs: tool('mksquashfs'),
  zstd: tool('zstd'),
  xz: tool('xz'),
  grubMkimage: tool('grub-mkimage'),
  sfdisk: tool('sfdisk'),
  mkfsVfat: tool('mkfs.vfat'),
  mcopy: tool('mcopy'),
  mke2fs: tool('mke2fs'),
  debugfs: tool('debugfs'),
  cp: tool('cp'),
} satisfies Record<string, ToolSpec>;
