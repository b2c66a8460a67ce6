import type {FilesystemSpec, PartitionContent} from './image.js';

/** The psyopsOS partition names; each filesystem label equals its GPT name. */
export const psyopsLabels = {
  esp: 'PSYOPSOSEFI',
  secret: 'psyops-secret',
  a: 'psyopsOS-A',
  b: 'psyopsOS-B',
} as const;

export interface PsyopsSizes {
  readonly espMiB: number;
  readonly secretMiB: number;
  readonly slotMiB: number;
}

/** The original's sizes: 128 MiB ESP, 128 MiB secrets, 1536 MiB per slot. */
export const defaultPsyopsSizes: PsyopsSizes = {espMiB: 128, secretMiB: 128, slotMiB: 1536};

export interface PsyopsContent {
  readonly esp?: PartitionContent;
  readonly secret?: PartitionContent;
  readonly a?: PartitionContent;
  readonly b?: PartitionContent;
}

/** GPT: ESP (FAT32), psyops-secret, psyopsOS-A, psyopsOS-B (ext4), in that order. */
export function psyopsPartitions(sizes: PsyopsSizes = defaultPsyopsSizes, content: PsyopsContent = {}): FilesystemSpec[] {
  const with_ = (c: PartitionContent | undefined) => (c ? {content: c} : {});
  return [
    {name: psyopsLabels.esp, kind: 'esp', fs: 'fat32', sizeMiB: sizes.espMiB, ...with_(content.esp)},
    {name: psyopsLabels.secret, kind: 'linux', fs: 'ext4', sizeMiB: sizes.secretMiB, ...with_(content.secret)},
    {name: psyopsLabels.a, kind: 'linux', fs: 'ext4', sizeMiB: sizes.slotMiB, ...with_(content.a)},
    {name: psyopsLabels.b, kind: 'linux', fs: 'ext4', sizeMiB: sizes.slotMiB, ...with_(content.b)},
  ];
}
