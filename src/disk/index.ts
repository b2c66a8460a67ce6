// Partition tables and filesystems inside image files, without root or mounts.
export {SECTOR, createGptImage, deriveUuid, findPartition, imageSizeBytes, readPartitions, sfdiskScript} from './gpt.js';
export type {DiskLayout, Partition, PartitionKind, PartitionSpec} from './gpt.js';
export {copyDirToFat, formatFat, listFat, makeFatDirs, readFatFile, writeFatFile} from './fat.js';
export type {FatOptions} from './fat.js';
export {ext4Identity, listExt4, makeExt4, readExt4File} from './ext4.js';
export type {Ext4Entry, Ext4Options} from './ext4.js';
export {buildDiskImage, writePartition} from './image.js';
export type {DiskImageSpec, FilesystemKind, FilesystemSpec, FilesystemWrite, PartitionContent} from './image.js';
export {defaultPsyopsSizes, psyopsLabels, psyopsPartitions} from './psyops-layout.js';
export type {PsyopsContent, PsyopsSizes} from './psyops-layout.js';
