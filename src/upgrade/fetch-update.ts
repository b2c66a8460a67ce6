import {closeSync, openSync, writeSync} from 'node:fs';
import {chmod, mkdir, mkdtemp, open, readFile, rm, stat, type FileHandle} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {blake2b512Impl} from '../sign/blake2b.js';
import type {PublicKey} from '../sign/keys.js';
import {startVerify, verifyTrustedComment, type StreamVerifier} from '../sign/signature.js';
import {hashOnThread, warmHashThread} from './hash-thread.js';
import {DIRECT_WRITE_MIN} from './slot-fs.js';
import type {Repository} from './repository.js';
import {TarUnpacker, type TarMember, type TarNames} from './tar.js';
import {MAX_SIGNATURE_BYTES, checkMeta, parseUpdateComment, typeFor, updateFilename, type UpdateMeta, type UpdateTarget} from './update-meta.js';

/** Names an ostar may hold: the slot's files, nothing else. */
export const OS_REQUIRED = ['kernel', 'initramfs', 'squashfs'] as const;
export const OS_OPTIONAL = ['kernel.version', 'modloop', 'squashfs.alpine_version', 'System.map', 'config'] as const;
const OS_NAMES = new Set<string>([...OS_REQUIRED, ...OS_OPTIONAL]);

/** The esptar's list of extra EFI programs (read by `show`; not used to boot). */
export const ESP_MANIFEST = 'manifest.json';
const ESP_GRUB_DIR = /^grub-[0-9a-f]{12}$/;
const ESP_FILE = /^grub-[0-9a-f]{12}\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Reads of a local tarball: big pieces, so the hashing is not drowned in stream overhead. */
const READ_CHUNK = 1 << 20;

function allowedNames(kind: UpdateTarget['kind']): TarNames {
  if (kind === 'os') return {file: (n) => OS_NAMES.has(n), dir: () => false};
  return {
    file: (n) => n === 'EFI/BOOT/BOOTX64.EFI' || n === ESP_MANIFEST || ESP_FILE.test(n),
    dir: (n) => n === 'EFI' || n === 'EFI/BOOT' || ESP_GRUB_DIR.test(n),
  };
}

/** An update whose signature, metadata and content have all been verified, not yet written. */
export interface VerifiedUpdate {
  readonly meta: UpdateMeta;
  readonly signatureText: string;
  /** The tarball as messages name it: its path, or its name and repository. */
  readonly source: string;
  /** The private staging folder (mode 0700) the members were unpacked into (an ostar's big ones are kept in memory). */
  readonly contentDir: string;
  readonly members: readonly TarMember[];
  /** The verified tarball itself, kept only when asked for (`download`). */
  readonly tarPath?: string;
  /** Removes the staging folder. */
  cleanup(): Promise<void>;
}

export interface VerifyRules {
  readonly target: UpdateTarget;
  readonly pubkey: PublicKey;
  readonly floor?: string;
  readonly allowDowngrade?: boolean;
  /**
   * The most bytes to read when the signature says no `size=` (the original psyopsOS's
   * signatures): what the update is for, such as the slot it goes to. Without it such a
   * signature is refused for a download.
   */
  readonly maxSize?: SizeCap;
}

/** A byte limit and what it is, for messages (`slot psyopsOS-B`). */
export interface SizeCap {
  readonly bytes: number;
  readonly what: string;
}

/** What `download` reads at most of an update whose signature gives no size. */
export const UNSIZED_DOWNLOAD_CAP: SizeCap = {bytes: 4 * 1024 ** 3, what: 'the 4 GiB limit for a download without a signed size'};

/** The byte limit for reading an update: its signed size, else the rules' cap. */
function capFor(meta: UpdateMeta, rules: VerifyRules, source: string): {size?: number; cap: SizeCap} {
  if (meta.size !== undefined) return {size: meta.size, cap: {bytes: meta.size, what: `the ${meta.size} bytes its signature says`}};
  if (rules.maxSize === undefined) throw new PsyError('bad-metadata', `${source}: trusted comment has no size=, so the download cannot be capped`);
  return {cap: rules.maxSize};
}

/** The signature's object name for a version (`latest` included). */
export function signatureName(target: UpdateTarget, version: string): string {
  return `${updateFilename(target, version)}.minisig`;
}

/** Step 1: fetch the signature (capped), authenticate its trusted comment, check the metadata. */
export async function fetchVerifiedMeta(repo: Repository, version: string, rules: VerifyRules): Promise<{meta: UpdateMeta; signatureText: string}> {
  const name = signatureName(rules.target, version);
  const {data} = await repo.fetchSmall(name, MAX_SIGNATURE_BYTES).catch((err: unknown) => {
    if (err instanceof PsyError && err.code === 'not-found' && version === 'latest') {
      throw new PsyError('no-latest', `no latest ${typeFor(rules.target.kind)} for ${rules.target.arch} in ${repo.description} (${name} is missing)`);
    }
    throw err;
  });
  const signatureText = data.toString('utf8');
  const source = `${name} from ${repo.description}`;
  const verified = verifyTrustedComment(signatureText, rules.pubkey, {source});
  const fields = parseUpdateComment(verified.trustedComment, source);
  const meta = checkMeta(fields, {
    target: rules.target,
    ...(version !== 'latest' ? {version} : {}),
    ...(rules.floor !== undefined ? {floor: rules.floor} : {}),
    allowDowngrade: rules.allowDowngrade ?? false,
    source,
  });
  return {meta, signatureText};
}

function checkMembers(members: readonly TarMember[], kind: UpdateTarget['kind'], what: string): void {
  if (kind === 'os') {
    for (const r of OS_REQUIRED) if (!members.some((m) => m.name === r)) throw new PsyError('bad-tarball', `${what}: missing member "${r}"`);
  } else {
    if (!members.some((m) => m.name === 'EFI/BOOT/BOOTX64.EFI')) throw new PsyError('bad-tarball', `${what}: missing member "EFI/BOOT/BOOTX64.EFI"`);
    const dirs = new Set(members.filter((m) => m.name.startsWith('grub-')).map((m) => m.name.split('/')[0]));
    if (dirs.size !== 1) throw new PsyError('bad-tarball', `${what}: expected exactly one grub-<id> directory, found ${dirs.size}`);
    const dir = [...dirs][0]!;
    if (!members.some((m) => m.name === `${dir}/grub.cfg`)) throw new PsyError('bad-tarball', `${what}: missing member "${dir}/grub.cfg"`);
  }
}

export interface ReceiveOptions {
  readonly meta: UpdateMeta;
  readonly signatureText: string;
  readonly pubkey: PublicKey;
  /** The tarball's name in messages. */
  readonly what: string;
  /** The signature's name in messages. */
  readonly signatureSource: string;
  /** Where the private staging folder is made. */
  readonly tmpRoot: string;
  /** Refuse when the bytes are not exactly this many (fewer: truncated, more: oversized). */
  readonly size?: number;
  /** Refuse more bytes than this (the signed size, or what the update is for). */
  readonly cap?: SizeCap;
  /** Also keep the verified tarball in the staging folder (for `download`). */
  readonly keepTar?: boolean;
}

/** Gets the next verification's hashing ready (its thread starts while the caller does other work). */
export function prepareVerify(): void {
  if (blake2b512Impl === 'native') warmHashThread();
}

/**
 * The one pass over an update's bytes: each piece is hashed for the signature, counted
 * against the signed size, and unpacked (only the expected names) into a private staging
 * folder. Nothing reads the source again: what is installed later is what was verified.
 * Any refusal removes the staging folder; a bad signature is reported before anything
 * the unverified bytes say about themselves (their tar structure).
 */
export async function receiveVerified(source: AsyncIterable<Uint8Array>, o: ReceiveOptions): Promise<VerifiedUpdate> {
  const dir = await mkdtemp(join(o.tmpRoot, 'neuralupgrade-'));
  let verifier: StreamVerifier;
  try {
    verifier = startVerify(o.signatureText, o.pubkey, {
      source: o.signatureSource,
      prehash: blake2b512Impl === 'native' ? () => hashOnThread('blake2b512') : undefined,
    });
  } catch (err) {
    await rm(dir, {recursive: true, force: true});
    throw err;
  }
  const cleanup = () => rm(dir, {recursive: true, force: true});
  const contentDir = join(dir, 'content');
  let tarFd: number | undefined;
  try {
    await chmod(dir, 0o700);
    await mkdir(contentDir, {mode: 0o755});
    const names = allowedNames(o.meta.kind);
    const capBytes = o.cap?.bytes ?? o.size ?? 0;
    // an ostar's big members stay in memory: the apply writes them straight to the slot
    const unpacker = new TarUnpacker(
      contentDir,
      names,
      o.what,
      o.meta.kind === 'os' ? {inMemory: (_name, size) => size >= DIRECT_WRITE_MIN, maxMemoryMember: capBytes} : {},
    );
    const tarPath = o.keepTar ? join(dir, o.meta.filename) : undefined;
    if (tarPath !== undefined) tarFd = openSync(tarPath, 'wx', 0o644);
    let got = 0;
    for await (const piece of source) {
      const chunk = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      got += chunk.length;
      const cap = o.cap ?? (o.size !== undefined ? {bytes: o.size, what: `the ${o.size} bytes its signature says`} : undefined);
      if (cap !== undefined && got > cap.bytes) throw new PsyError('oversized-download', `${o.what} is larger than ${cap.what}`);
      unpacker.write(chunk);
      if (tarFd !== undefined) for (let w = 0; w < chunk.length;) w += writeSync(tarFd, chunk, w, chunk.length - w);
      // last: the piece is handed to the hashing thread and not touched here again
      verifier.update(chunk);
    }
    if (o.size !== undefined && got !== o.size) {
      throw new PsyError('truncated-download', `${o.what}: got ${got} bytes, the signature says ${o.size}`);
    }
    await verifier.verify();
    const members = unpacker.finish();
    checkMembers(members, o.meta.kind, o.what);
    return {meta: o.meta, signatureText: o.signatureText, source: o.what, contentDir, members, ...(tarPath !== undefined ? {tarPath} : {}), cleanup};
  } catch (err) {
    verifier.abandon();
    await cleanup();
    throw err;
  } finally {
    if (tarFd !== undefined) closeSync(tarFd);
  }
}

/** Steps 2-3: stream the tarball once (capped by the signed size), verify it, unpack only expected names. */
export async function downloadVerified(
  repo: Repository,
  version: string,
  rules: VerifyRules,
  tmpRoot: string,
  options: {keepTar?: boolean} = {},
): Promise<VerifiedUpdate> {
  const {meta, signatureText} = await fetchVerifiedMeta(repo, version, rules);
  const what = `${meta.filename} from ${repo.description}`;
  const {size, cap} = capFor(meta, rules, `${signatureName(rules.target, version)} from ${repo.description}`);
  // the repository's own size check, said the way the stream's is
  const restate = (err: unknown): never => {
    if (err instanceof PsyError && err.code === 'oversized-download') throw new PsyError('oversized-download', `${what} is larger than ${cap.what}`);
    throw err;
  };
  const opened = await repo.open(meta.filename, cap.bytes).catch(restate);
  async function* body(): AsyncGenerator<Buffer> {
    try {
      yield* opened;
    } catch (err) {
      restate(err);
    }
  }
  return receiveVerified(body(), {
    meta,
    signatureText,
    pubkey: rules.pubkey,
    what,
    signatureSource: what,
    tmpRoot,
    ...(size !== undefined ? {size} : {}),
    cap,
    ...(options.keepTar ? {keepTar: true} : {}),
  });
}

/** A file of known size read into one SharedArrayBuffer, in READ_CHUNK pieces (views of it). */
async function* readShared(fh: FileHandle, size: number): AsyncGenerator<Buffer> {
  const all = Buffer.from(new SharedArrayBuffer(Math.max(size, 1)));
  let at = 0;
  while (at < size) {
    const {bytesRead} = await fh.read(all, at, Math.min(READ_CHUNK, size - at), at);
    if (bytesRead === 0) break;
    yield all.subarray(at, at + bytesRead);
    at += bytesRead;
  }
  // a file grown since its size was read: the rest is read too, so the size check refuses it
  for (;;) {
    const more = Buffer.allocUnsafe(READ_CHUNK);
    const {bytesRead} = await fh.read(more, 0, READ_CHUNK, at);
    if (bytesRead === 0) return;
    yield more.subarray(0, bytesRead);
    at += bytesRead;
  }
}

export interface LocalOptions {
  /** The signature file (default: the tarball's path + `.minisig`). */
  readonly signaturePath?: string;
  /** Where the staging folder is made (default: the system's temporary folder). */
  readonly tmpRoot?: string;
  /** Opens the tarball (tests count the opens through it). */
  readonly openTar?: (path: string) => Promise<FileHandle>;
}

/**
 * A tarball given on the command line, with its signature beside it (or named). It is
 * opened once and read once; a pipe works as well as a file.
 */
export async function verifyLocal(tarPath: string, rules: VerifyRules, options: LocalOptions = {}): Promise<VerifiedUpdate> {
  const signaturePath = options.signaturePath ?? `${tarPath}.minisig`;
  let signatureText: string;
  try {
    if ((await stat(signaturePath)).size > MAX_SIGNATURE_BYTES) throw new PsyError('oversized-download', `${signaturePath} is too large for a signature`);
    signatureText = await readFile(signaturePath, 'utf8');
  } catch (err) {
    if (err instanceof PsyError) throw err;
    throw new PsyError('missing-input', `cannot read the signature ${signaturePath}`);
  }
  const verified = verifyTrustedComment(signatureText, rules.pubkey, {source: signaturePath});
  const fields = parseUpdateComment(verified.trustedComment, signaturePath);
  const meta = checkMeta(fields, {
    target: rules.target,
    ...(rules.floor !== undefined ? {floor: rules.floor} : {}),
    allowDowngrade: rules.allowDowngrade ?? false,
    source: signaturePath,
  });
  let fh: FileHandle;
  try {
    fh = await (options.openTar ?? ((p: string) => open(p, 'r')))(tarPath);
  } catch {
    throw new PsyError('missing-input', `cannot read ${tarPath}`);
  }
  try {
    const st = await fh.stat();
    // a regular file's size is known before reading: refuse a wrong one at once
    if (st.isFile() && meta.size !== undefined && st.size !== meta.size) {
      throw new PsyError(st.size > meta.size ? 'oversized-download' : 'truncated-download', `${tarPath} is ${st.size} bytes, the signature says ${meta.size}`);
    }
    const {size, cap} = capFor(meta, {...rules, maxSize: rules.maxSize ?? UNSIZED_DOWNLOAD_CAP}, signaturePath);
    if (st.isFile() && st.size > cap.bytes) throw new PsyError('oversized-download', `${tarPath} is larger than ${cap.what}`);
    // A regular file is read whole into one shared buffer: the hashing thread reads the
    // pieces there and the big members stay views of it, so no byte is copied in memory.
    const pieces = st.isFile() ? readShared(fh, st.size) : fh.createReadStream({autoClose: false, highWaterMark: READ_CHUNK});
    return await receiveVerified(pieces, {
      meta,
      signatureText,
      pubkey: rules.pubkey,
      what: tarPath,
      signatureSource: tarPath,
      tmpRoot: options.tmpRoot ?? tmpdir(),
      ...(size !== undefined ? {size} : {}),
      cap,
    });
  } finally {
    await fh.close();
  }
}
