import {mkdtemp, readFile, rm, stat} from 'node:fs/promises';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import type {PublicKey} from '../sign/keys.js';
import {verifyFile, verifyTrustedComment} from '../sign/signature.js';
import {parseTrustedComment} from '../sign/trusted-comment.js';
import type {Repository} from './repository.js';
import {listTar, type TarMember} from './tar.js';
import {MAX_SIGNATURE_BYTES, checkMeta, typeFor, updateFilename, type UpdateMeta, type UpdateTarget} from './update-meta.js';

/** Names an ostar may hold: the slot's files, nothing else. */
export const OS_REQUIRED = ['kernel', 'initramfs', 'squashfs'] as const;
export const OS_OPTIONAL = ['kernel.version', 'modloop', 'squashfs.alpine_version', 'System.map', 'config'] as const;
const OS_NAMES = new Set<string>([...OS_REQUIRED, ...OS_OPTIONAL]);

/** The esptar's list of extra EFI programs (read by `show`; not used to boot). */
export const ESP_MANIFEST = 'manifest.json';
const ESP_GRUB_DIR = /^grub-[0-9a-f]{12}$/;
const ESP_FILE = /^grub-[0-9a-f]{12}\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

function allowedNames(kind: UpdateTarget['kind']): {file: (n: string) => boolean; dir: (n: string) => boolean} {
  if (kind === 'os') return {file: (n) => OS_NAMES.has(n), dir: () => false};
  return {
    file: (n) => n === 'EFI/BOOT/BOOTX64.EFI' || n === ESP_MANIFEST || ESP_FILE.test(n),
    dir: (n) => n === 'EFI' || n === 'EFI/BOOT' || ESP_GRUB_DIR.test(n),
  };
}

/** An update whose signature, metadata and file have all been verified, not yet written. */
export interface VerifiedUpdate {
  readonly meta: UpdateMeta;
  readonly tarPath: string;
  readonly signatureText: string;
  readonly members: readonly TarMember[];
  /** Removes the downloaded copy (a local --os-tar is left alone). */
  cleanup(): Promise<void>;
}

export interface VerifyRules {
  readonly target: UpdateTarget;
  readonly pubkey: PublicKey;
  readonly floor?: string;
  readonly allowDowngrade?: boolean;
}

/** The signature's object name for a version (`latest` included). */
export function signatureName(target: UpdateTarget, version: string): string {
  return `${updateFilename(target, version)}.minisig`;
}

/** Step 1: fetch the signature (capped), authenticate its trusted comment, check the metadata. */
export async function fetchVerifiedMeta(
  repo: Repository,
  version: string,
  rules: VerifyRules,
): Promise<{meta: UpdateMeta; signatureText: string}> {
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
  const fields = parseTrustedComment(verified.trustedComment, source);
  const meta = checkMeta(fields, {
    target: rules.target,
    ...(version !== 'latest' ? {version} : {}),
    ...(rules.floor !== undefined ? {floor: rules.floor} : {}),
    allowDowngrade: rules.allowDowngrade ?? false,
    source,
  });
  if (meta.size === undefined) throw new PsyError('bad-metadata', `${source}: trusted comment has no size=, so the download cannot be capped`);
  return {meta, signatureText};
}

function checkMembers(tarPath: string, kind: UpdateTarget['kind'], what: string): TarMember[] {
  const names = allowedNames(kind);
  const members = listTar(tarPath, names.file, what, names.dir);
  if (kind === 'os') {
    for (const r of OS_REQUIRED) if (!members.some((m) => m.name === r)) throw new PsyError('bad-tarball', `${what}: missing member "${r}"`);
  } else {
    if (!members.some((m) => m.name === 'EFI/BOOT/BOOTX64.EFI')) throw new PsyError('bad-tarball', `${what}: missing member "EFI/BOOT/BOOTX64.EFI"`);
    const dirs = new Set(members.filter((m) => m.name.startsWith('grub-')).map((m) => m.name.split('/')[0]));
    if (dirs.size !== 1) throw new PsyError('bad-tarball', `${what}: expected exactly one grub-<id> directory, found ${dirs.size}`);
    const dir = [...dirs][0]!;
    if (!members.some((m) => m.name === `${dir}/grub.cfg`)) throw new PsyError('bad-tarball', `${what}: missing member "${dir}/grub.cfg"`);
  }
  return members;
}

/** Steps 2-3: download with the signed size as cap, verify the file, list only expected names. */
export async function downloadVerified(
  repo: Repository,
  version: string,
  rules: VerifyRules,
  tmpRoot: string,
): Promise<VerifiedUpdate> {
  const {meta, signatureText} = await fetchVerifiedMeta(repo, version, rules);
  const dir = await mkdtemp(join(tmpRoot, 'neuralupgrade-'));
  const cleanup = () => rm(dir, {recursive: true, force: true});
  try {
    const tarPath = join(dir, meta.filename);
    const got = await repo.download(meta.filename, meta.size!, tarPath);
    if (got !== meta.size) {
      throw new PsyError('truncated-download', `${meta.filename} from ${repo.description}: got ${got} bytes, the signature says ${meta.size}`);
    }
    await verifyFile(tarPath, rules.pubkey, {signature: signatureText, source: `${meta.filename} from ${repo.description}`});
    const members = checkMembers(tarPath, meta.kind, meta.filename);
    return {meta, tarPath, signatureText, members, cleanup};
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** A tarball given on the command line, with its signature beside it (or named). */
export async function verifyLocal(tarPath: string, rules: VerifyRules, signaturePath = `${tarPath}.minisig`): Promise<VerifiedUpdate> {
  let signatureText: string;
  try {
    if ((await stat(signaturePath)).size > MAX_SIGNATURE_BYTES) throw new PsyError('oversized-download', `${signaturePath} is too large for a signature`);
    signatureText = await readFile(signaturePath, 'utf8');
  } catch (err) {
    if (err instanceof PsyError) throw err;
    throw new PsyError('missing-input', `cannot read the signature ${signaturePath}`);
  }
  const verified = verifyTrustedComment(signatureText, rules.pubkey, {source: signaturePath});
  const fields = parseTrustedComment(verified.trustedComment, signaturePath);
  const meta = checkMeta(fields, {
    target: rules.target,
    ...(rules.floor !== undefined ? {floor: rules.floor} : {}),
    allowDowngrade: rules.allowDowngrade ?? false,
    source: signaturePath,
  });
  const size = (await stat(tarPath).catch(() => undefined))?.size;
  if (size === undefined) throw new PsyError('missing-input', `cannot read ${tarPath}`);
  if (meta.size !== undefined && size !== meta.size) {
    throw new PsyError(size > meta.size ? 'oversized-download' : 'truncated-download', `${tarPath} is ${size} bytes, the signature says ${meta.size}`);
  }
  await verifyFile(tarPath, rules.pubkey, {signature: signatureText, source: tarPath});
  const members = checkMembers(tarPath, meta.kind, tarPath);
  return {meta, tarPath, signatureText, members, cleanup: async () => {}};
}
