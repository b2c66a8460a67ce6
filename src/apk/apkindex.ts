import {PsyError, printable} from '../errors.js';
import {gzipMember, inflateGzipMember, MAX_INDEX_INFLATED} from './gzip-members.js';
import type {Keyring, SigningKey} from './keys.js';
import {recordFromLines, recordLines, type IndexRecord} from './package-meta.js';
import {signatureFiles, signatureMember, verifySignatures, type SignatureAlgorithm} from './signature.js';
import {readTar, writeTar} from '../tar/index.js';

export interface ApkIndex {
  readonly description: string;
  readonly records: readonly IndexRecord[];
  /** Key whose signature verified; undefined when read without verification. */
  readonly signedBy: string | undefined;
}

export interface ReadIndexOptions {
  readonly keyring?: Keyring;
  /** Only for indexes the caller vouches for otherwise; never for downloaded ones. */
  readonly skipSignature?: boolean;
}

/** Reads APKINDEX.tar.gz: the signature member, then a tar with DESCRIPTION and APKINDEX. */
export function readApkIndex(bytes: Buffer, source: string, options: ReadIndexOptions = {}): ApkIndex {
  const what = `index ${source}`;
  const tarCtx = {what, code: 'apk-corrupt'};
  // the signature tar, or the body of an unsigned index (then capped like a body)
  const head = inflateGzipMember(bytes, 0, what, MAX_INDEX_INFLATED, 'first member');
  const first = readTar(head.data, tarCtx, {allowMissingEnd: true});
  const signed = first.length > 0 && first.every((e) => e.path.startsWith('.SIGN.'));
  const bodyAt = signed ? head.length : 0;
  if (!signed && head.length < bytes.length) {
    throw new PsyError('apk-corrupt', `${what}: more than 1 gzip member without a signature (trailing data at byte ${head.length})`);
  }
  if (signed && bodyAt >= bytes.length) throw new PsyError('apk-corrupt', `${what}: no APKINDEX section (truncated)`);
  let signedBy: string | undefined;
  if (!options.skipSignature) {
    if (!options.keyring) throw new PsyError('apk-untrusted', `${what}: no keys given to verify it with`);
    // the body is the last member: what follows the signature is what it covers, checked before inflating
    signedBy = verifySignatures(signed ? signatureFiles(first) : [], bytes.subarray(bodyAt), options.keyring, what);
  }
  const body = signed ? inflateGzipMember(bytes, bodyAt, what, MAX_INDEX_INFLATED, 'APKINDEX body') : head;
  if (body.offset + body.length !== bytes.length) {
    throw new PsyError('apk-corrupt', `${what}: more than 2 gzip members (trailing data at byte ${body.offset + body.length})`);
  }
  const entries = readTar(body.data, tarCtx, {allowMissingEnd: true});
  const index = entries.find((e) => e.path === 'APKINDEX');
  if (!index) throw new PsyError('apk-corrupt', `${what}: no APKINDEX file inside`);
  const description =
    entries
      .find((e) => e.path === 'DESCRIPTION')
      ?.data.toString('utf8')
      .trim() ?? '';
  return {description, records: parseIndexText(index.data.toString('utf8'), what), signedBy};
}

/** Parses APKINDEX text: records of `L:value` lines separated by blank lines. */
export function parseIndexText(text: string, what: string): IndexRecord[] {
  const out: IndexRecord[] = [];
  let lines: Array<[string, string]> = [];
  const flush = () => {
    if (lines.length) out.push(recordFromLines(lines, what));
    lines = [];
  };
  for (const line of text.split('\n')) {
    if (line === '') {
      flush();
      continue;
    }
    if (line[1] !== ':') throw new PsyError('apk-corrupt', `${what}: malformed index line '${printable(line.slice(0, 60))}'`);
    lines.push([line[0]!, line.slice(2)]);
  }
  flush();
  return out;
}

export function formatIndexText(records: readonly IndexRecord[]): string {
  return records.map((r) => recordLines(r).join('\n') + '\n\n').join('');
}

export interface WriteIndexInput {
  readonly records: readonly IndexRecord[];
  readonly description: string;
  readonly key: SigningKey | undefined;
  /** mtime of DESCRIPTION/APKINDEX and the signature (SOURCE_DATE_EPOCH). */
  readonly mtime: number;
  readonly algorithm?: SignatureAlgorithm;
}

/**
 * Writes a signed APKINDEX.tar.gz as `apk index` + `abuild-sign` do. Records are sorted
 * by name then version so the bytes depend only on the packages.
 */
export function writeApkIndex(input: WriteIndexInput): Buffer {
  if (Buffer.byteLength(input.description) > 160) {
    throw new PsyError('apk-index', 'index DESCRIPTION must be at most 160 bytes (apk ignores longer ones)');
  }
  const records = [...input.records].sort((a, b) =>
    a.name !== b.name ? (a.name < b.name ? -1 : 1) : a.version < b.version ? -1 : a.version > b.version ? 1 : 0,
  );
  const file = (path: string, data: string) => ({
    path,
    type: 'file' as const,
    mode: 0o644,
    uname: 'root',
    gname: 'root',
    mtime: input.mtime,
    data: Buffer.from(data),
  });
  const tar = writeTar([file('DESCRIPTION', input.description), file('APKINDEX', formatIndexText(records))], {
    format: 'gnu',
    fullWidthNumbers: true,
  });
  const body = gzipMember(tar);
  return input.key ? Buffer.concat([signatureMember(body, input.key, input.mtime, input.algorithm), body]) : body;
}
