import {createHash} from 'node:crypto';
import {existsSync, mkdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs';
import {isAbsolute, join, resolve} from 'node:path';
import {PsyError} from '../src/errors.js';
import {readApk, type ApkPackage} from '../src/apk/apk-package.js';
import {readApkIndex} from '../src/apk/apkindex.js';
import type {Keyring} from '../src/apk/keys.js';
import type {IndexRecord} from '../src/apk/package-meta.js';
import {resolve as resolveWorld, type ResolverRepository} from '../src/apk/resolver.js';

/**
 * Where the rules get Alpine packages: local repository folders (file paths or file://)
 * and http(s) mirrors through a content-addressed download cache, verified against the
 * configured keys. When a mirror cannot be reached the error says how to build offline.
 */

export interface RepositorySettings {
  /** Repository bases as in /etc/apk/repositories: URL or folder (relative to the project). */
  readonly repositories: readonly string[];
  readonly arch: string;
  /** Download cache folder (relative to the project). */
  readonly cacheDir: string;
}

function isUrl(r: string): boolean {
  return /^https?:\/\//.test(r);
}

export function repositoryPath(root: string, repo: string): string {
  const r = repo.replace(/^file:\/\//, '');
  return isAbsolute(r) ? r : resolve(root, r);
}

/** The local APKINDEX files of folder repositories (as configured): inputs of the install targets. */
export function localIndexFiles(s: RepositorySettings): string[] {
  return s.repositories.filter((r) => !isUrl(r)).map((r) => `${r.replace(/^file:\/\//, '').replace(/\/$/, '')}/${s.arch}/APKINDEX.tar.gz`);
}

async function fetchBytes(url: string, cacheFile: string | undefined, signal: AbortSignal): Promise<Buffer> {
  if (cacheFile && existsSync(cacheFile)) return readFileSync(cacheFile);
  let res: Response;
  try {
    res = await fetch(url, {signal: AbortSignal.any([signal, AbortSignal.timeout(20_000)])});
  } catch (err) {
    const cause = (err as {cause?: {code?: string}}).cause?.code ?? (err as Error).message;
    throw new PsyError(
      'mirror-unreachable',
      `Alpine mirror cannot be reached: ${url} (${cause}); to build offline, use a package cache (settings.alpine.cacheDir filled by an earlier online build) or a local repository folder in settings.alpine.repositories (see docs/readme-os.md)`,
    );
  }
  if (!res.ok) throw new PsyError('mirror-error', `${url}: HTTP ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  if (cacheFile) {
    mkdirSync(join(cacheFile, '..'), {recursive: true});
    writeFileSync(cacheFile + '.part', bytes);
    renameSync(cacheFile + '.part', cacheFile);
  }
  return bytes;
}

interface LoadedRepository extends ResolverRepository {
  readonly base: string;
}

async function loadRepositories(root: string, s: RepositorySettings, keys: () => Keyring, signal: AbortSignal): Promise<LoadedRepository[]> {
  const fetched: Array<{repo: string; bytes: Buffer; source: string}> = [];
  for (const repo of s.repositories) {
    let bytes: Buffer;
    let source: string;
    if (isUrl(repo)) {
      source = `${repo.replace(/\/$/, '')}/${s.arch}/APKINDEX.tar.gz`;
      // Indexes change on the mirror; cache them per URL only as the offline fallback.
      const cached = join(resolve(root, s.cacheDir), 'indexes', createHash('sha256').update(source).digest('hex').slice(0, 24) + '.tar.gz');
      try {
        bytes = await fetchBytes(source, undefined, signal);
        mkdirSync(join(cached, '..'), {recursive: true});
        writeFileSync(cached, bytes);
      } catch (err) {
        if (!existsSync(cached)) throw err;
        bytes = readFileSync(cached);
      }
    } else {
      source = join(repositoryPath(root, repo), s.arch, 'APKINDEX.tar.gz');
      try {
        bytes = readFileSync(source);
      } catch {
        throw new PsyError('missing-repository', `repository ${repo}: no ${s.arch}/APKINDEX.tar.gz in ${repositoryPath(root, repo)}`);
      }
    }
    fetched.push({repo, bytes, source});
  }
  // Keys are read once every index is at hand, so an unreachable mirror is reported first.
  const keyring = keys();
  return fetched.map(({repo, bytes, source}) => ({name: repo, records: readApkIndex(bytes, source, {keyring}).records, base: repo}));
}

/** Resolve the world and fetch every package, verified; install order (dependencies first). */
export async function fetchWorld(
  root: string,
  s: RepositorySettings,
  world: readonly string[],
  keys: () => Keyring,
  signal: AbortSignal,
): Promise<{packages: ApkPackage[]; records: IndexRecord[]}> {
  const repos = await loadRepositories(root, s, keys, signal);
  const keyring = keys();
  const resolved = resolveWorld({world, repositories: repos, arch: s.arch});
  const packages: ApkPackage[] = [];
  for (const r of resolved) {
    const file = `${r.record.name}-${r.record.version}.apk`;
    let bytes: Buffer;
    if (isUrl(r.repository)) {
      const url = `${r.repository.replace(/\/$/, '')}/${s.arch}/${file}`;
      const key = createHash('sha256').update(r.record.checksum).digest('hex').slice(0, 32);
      bytes = await fetchBytes(url, join(resolve(root, s.cacheDir), 'packages', `${key}-${file}`), signal);
    } else {
      const path = join(repositoryPath(root, r.repository), s.arch, file);
      try {
        bytes = readFileSync(path);
      } catch {
        throw new PsyError('missing-package-file', `repository ${r.repository} lists ${file} but the file is missing (${path})`);
      }
    }
    packages.push(readApk(bytes, file, {keyring, expectedChecksum: r.record.checksum}));
  }
  return {packages, records: resolved.map((r) => r.record)};
}
