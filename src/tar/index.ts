/** psy's one tar implementation: header codec, readers and writers. */
export {
  BLOCK,
  MAX_EXTENSION,
  TYPEFLAG,
  decodeHeader,
  encodeHeader,
  parsePax,
  encodePax,
  type TarContext,
  type TarEntryMeta,
  type TarEntryType,
} from './codec.js';
export {TarStream, readTar, readTarFileMembers, type TarEntry, type TarSink, type ReadTarOptions} from './reader.js';
export {entryHeader, writeTar, writeTarFile, type TarWriteEntry, type WriteTarOptions} from './writer.js';
