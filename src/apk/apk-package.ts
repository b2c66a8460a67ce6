import {createHash} from 'node:crypto';
import {PsyError} from '../errors.js';
import {inflateGzipMember, MAX_CONTROL_INFLATED} from './gzip-members.js';
import type {Keyring} from './keys.js';
import {parsePkginfo, type PackageMeta} from './package-meta.js';
import {signatureFiles, verifySignatures, type SignatureFile} from './signature.js';
import {readTar, type TarEntry} from '../tar/index.js';

export type ScriptName = 'pre-install' | 'post-install' | 'pre-deinstall' | 'post-deinstall' | 'pre-upgrade' | 'post-upgrade' | 'trigger';

export const SCRIPT_NAMES: readonly ScriptName[] = ['pre-install', 'post-install', 'pre-deinstall', 'post-deinstall', 'pre-upgrade', 'post-upgrade', 'trigger'];

/** A verified, parsed APK v2 package held in memory. */
export interface ApkPackage {
  /** Where it came from (path or URL), for messages. */
  readonly source: string;
  readonly meta: PackageMeta;
  /** `Q1` + base64 SHA-1 of the compressed control member: what indexes call `C:`. */
  readonly checksum: string;
  /** Size of the .apk file. */
  readonly size: number;
  /** The key whose signature verified, or undefined when read without verification. */
  readonly signedBy: string | undefined;
  readonly signatures: readonly SignatureFile[];
  /** Control-tar scripts by name (`.pre-install` → 'pre-install'), with their tar mode. */
  readonly scripts: ReadonlyMap<ScriptName, Buffer>;
  /** The data tar entries (everything installed). */
  readonly dataEntries: readonly TarEntry[];
}

export interface ReadApkOptions {
  /** Trusted keys. Required unless `skipSignature` is set. */
  readonly keyring?: Keyring;
  /** Skip the signature check (the checksum from a verified index vouches instead). */
  readonly skipSignature?: boolean;
  /** The identity the caller expects (index `C:`); a different package is refused. */
  readonly expectedChecksum?: string;
}

/** `Q1` + base64(SHA-1(bytes)). */
export function q1(bytes: Buffer | string): string {
  return 'Q1' + createHash('sha1').update(bytes).digest('base64');
}

/**
 * The data member may inflate to the installed size its verified .PKGINFO declares,
 * twice over (file systems round differently than tar), plus room for tar headers of
 * many small files; and never past MAX_DATA_INFLATED, what psy holds in memory.
 */
export const MAX_DATA_INFLATED = 2 * 1024 ** 3;
const TAR_HEADER_ROOM = 16 << 20;

export function dataInflationLimit(installedSize: number): number {
  return Math.min(MAX_DATA_INFLATED, 2 * installedSize + TAR_HEADER_ROOM);
}

/**
 * Reads an APK v2 package: splits the signature, control and data gzip members, checks
 * a signature by a trusted key over the control member, the identity against
 * `expectedChecksum`, and the data member against `datahash`. What can be verified is
 * verified before anything larger is inflated: the data member is hashed compressed,
 * then inflated only up to what the verified .PKGINFO declares.
 */
export function readApk(bytes: Buffer, source: string, options: ReadApkOptions = {}): ApkPackage {
  const what = `package ${source}`;
  const tarCtx = {what, code: 'apk-corrupt'};
  // the first member is the signature tar, or the control tar of an unsigned package
  const head = inflateGzipMember(bytes, 0, what, MAX_CONTROL_INFLATED, 'first member');
  const first = readTar(head.data, tarCtx, {allowMissingEnd: true});
  const signed = first.length > 0 && first.every((e) => e.path.startsWith('.SIGN.'));
  const sigs = signed ? signatureFiles(first) : [];
  const controlAt = signed ? head.length : 0;
  if (controlAt >= bytes.length) throw new PsyError('apk-corrupt', `${what}: no control section (truncated)`);
  const control = signed ? inflateGzipMember(bytes, controlAt, what, MAX_CONTROL_INFLATED, 'control member') : head;
  const controlBytes = bytes.subarray(control.offset, control.offset + control.length);
  const checksum = q1(controlBytes);
  if (options.expectedChecksum !== undefined && options.expectedChecksum !== checksum) {
    throw new PsyError('apk-checksum-mismatch', `${what}: checksum ${checksum} does not match the index (${options.expectedChecksum})`);
  }
  const controlEntries = signed ? readTar(control.data, tarCtx, {allowMissingEnd: true}) : first;
  const pkginfoEntry = controlEntries.find((e) => e.path === '.PKGINFO');
  if (!pkginfoEntry) throw new PsyError('apk-corrupt', `${what}: no .PKGINFO in the control section`);
  const meta = parsePkginfo(pkginfoEntry.data.toString('utf8'), what);
  const dataAt = control.offset + control.length;
  if (dataAt >= bytes.length) throw new PsyError('apk-corrupt', `${what}: no data section (truncated)`);
  // The data member is the last one: what follows the control member is what
  // the signature (legacy) or the datahash covers, checked before it is inflated.
  const dataBytes = bytes.subarray(dataAt);

  let signedBy: string | undefined;
  if (!options.skipSignature) {
    if (!options.keyring) throw new PsyError('apk-untrusted', `${what}: no keys given to verify it with`);
    // Without datahash (legacy packages) the signature covers control and data together.
    const covered = meta.datahash ? controlBytes : bytes.subarray(control.offset);
    signedBy = verifySignatures(sigs, covered, options.keyring, what);
  }
  if (meta.datahash !== undefined) {
    const actual = createHash('sha256').update(dataBytes).digest('hex');
    if (actual !== meta.datahash) {
      throw new PsyError('apk-checksum-mismatch', `${what}: data section does not match its datahash (content altered or truncated)`);
    }
  }
  const limit = dataInflationLimit(meta.installedSize);
  const data = inflateGzipMember(bytes, dataAt, what, limit, `data member (declared installed size ${meta.installedSize})`);
  if (data.offset + data.length !== bytes.length) {
    throw new PsyError('apk-corrupt', `${what}: more than 3 gzip members (trailing data at byte ${data.offset + data.length})`);
  }
  const scripts = new Map<ScriptName, Buffer>();
  for (const e of controlEntries) {
    const name = e.path.replace(/^\./, '') as ScriptName;
    if (e.path.startsWith('.') && SCRIPT_NAMES.includes(name) && e.type === 'file') scripts.set(name, e.data);
  }
  const dataEntries = readTar(data.data, tarCtx);
  return {source, meta, checksum, size: bytes.length, signedBy, signatures: sigs, scripts, dataEntries};
}
