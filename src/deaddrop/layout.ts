import {lstat, readdir, readlink} from 'node:fs/promises';
import {basename, join} from 'node:path';

/**
 * The deaddrop replica (and the bucket, which mirrors it):
 *   os/psyopsOS.<arch>.<version>.tar(.minisig)
 *   os/psyopsESP.<platform>.<version>.tar(.minisig)
 *   os/psyopsOS.<arch>.latest.tar.minisig  -> psyopsOS.<arch>.<version>.tar.minisig (symlink)
 *   apk/...                                    our APK repository, as built
 * There is deliberately no latest *tarball*: the signature names the tarball, so a
 * reader never pairs a tarball with the wrong signature.
 */
export type ArtifactKind = 'psyopsOS' | 'psyopsESP';

export const OS_DIR = 'os';
export const APK_DIR = 'apk';
/** Names starting with this are psy's own scratch and state; never published or served. */
export const PRIVATE_PREFIX = '.psy-';

/** Versions are UTC publish times, so string order is time order. */
export const VERSION_PATTERN = /^\d{8}-\d{6}$/;
const ID_PATTERN = /^[A-Za-z0-9_-]+$/;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

export function tarballName(kind: ArtifactKind, id: string, version: string): string {
  return `${kind}.${id}.${version}.tar`;
}

export function signatureName(kind: ArtifactKind, id: string, version: string): string {
  return `${tarballName(kind, id, version)}.minisig`;
}

export function latestName(kind: ArtifactKind, id: string): string {
  return `${kind}.${id}.latest.tar.minisig`;
}

export interface ParsedName {
  readonly kind: ArtifactKind;
  readonly id: string;
  readonly version: string;
  readonly signature: boolean;
}

const NAME = /^(psyopsOS|psyopsESP)\.([A-Za-z0-9_-]+)\.(\d{8}-\d{6})\.tar(\.minisig)?$/;

export function parseArtifactName(name: string): ParsedName | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  return {kind: m[1] as ArtifactKind, id: m[2]!, version: m[3]!, signature: m[4] !== undefined};
}

export function formatVersion(date: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${p(date.getUTCFullYear(), 4)}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}-` +
    `${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`
  );
}

export function parseVersion(version: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})$/.exec(version);
  if (!m) throw new RangeError(`not a deaddrop version: ${version}`);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

/** A version after both `now` and every existing one (publishing twice in a second). */
export function nextVersion(now: Date, existing: Iterable<string>): string {
  let t = Math.floor(now.getTime() / 1000) * 1000;
  for (const v of existing) t = Math.max(t, parseVersion(v).getTime() + 1000);
  return formatVersion(new Date(t));
}

export interface ArtifactVersions {
  /** version → which halves exist */
  readonly versions: Map<string, {tarball: boolean; signature: boolean}>;
  /** The version `latest` names, if it is a well-formed link into this directory. */
  readonly latest: string | undefined;
}

/** What the os/ directory holds for one artifact. */
export async function scanArtifact(osDir: string, kind: ArtifactKind, id: string): Promise<ArtifactVersions> {
  const versions = new Map<string, {tarball: boolean; signature: boolean}>();
  let names: string[] = [];
  try {
    names = await readdir(osDir);
  } catch {
    return {versions, latest: undefined};
  }
  for (const name of names) {
    const p = parseArtifactName(name);
    if (!p || p.kind !== kind || p.id !== id) continue;
    const entry = versions.get(p.version) ?? {tarball: false, signature: false};
    if (p.signature) entry.signature = true;
    else entry.tarball = true;
    versions.set(p.version, entry);
  }
  return {versions, latest: await readLatest(osDir, kind, id)};
}

export async function readLatest(osDir: string, kind: ArtifactKind, id: string): Promise<string | undefined> {
  const link = join(osDir, latestName(kind, id));
  try {
    if (!(await lstat(link)).isSymbolicLink()) return undefined;
    const target = await readlink(link);
    const p = parseArtifactName(basename(target));
    if (!p || target.includes('/') || !p.signature || p.kind !== kind || p.id !== id) return undefined;
    return p.version;
  } catch {
    return undefined;
  }
}
