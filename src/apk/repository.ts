import {createHash} from 'node:crypto';
import {existsSync, mkdirSync, readFileSync, renameSync, writeFileSync} from 'node:fs';
import {isAbsolute, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {PsyError} from '../errors.js';
import {readApk, type ApkPackage} from './apk-package.js';
import {readApkIndex, type ApkIndex} from './apkindex.js';
import type {Keyring} from './keys.js';

/** A repository as configured: `[@tag] <https://… | http://… | file:///… | folder>`. */
export interface RepositorySpec {
  /** The location as written (after `{release}` substitution), recorded in the lock. */
  readonly location: string;
  readonly tag: string | undefined;
}

export function parseRepositoryLine(line: string, release = ''): RepositorySpec {
  const m = /^(?:@(\S+)\s+)?(\S+)$/.exec(line.trim());
  if (!m) throw new PsyError('apk-settings', `repository '${line}' is not '[@tag] URL-or-folder'`);
  return {tag: m[1], location: m[2]!.replaceAll('{release}', release)};
}

export interface RepositoryClientOptions {
  /** Folder that relative repository folders are resolved against (the project root). */
  readonly baseDir: string;
  readonly arch: string;
  readonly keyring: Keyring;
  /** Download cache: `<cacheDir>/indexes/…` and content-addressed `<cacheDir>/packages/…`. */
  readonly cacheDir: string;
  /** Never touch the network: indexes and packages come from the cache. */
  readonly offline?: boolean;
  readonly log?: (line: string) => void;
}

type Location = {kind: 'http'; url: string} | {kind: 'folder'; dir: string};

/**
 * Reads repositories: remote ones over http(s) through a download cache, local ones
 * (folders, file://) directly. Every index is signature-checked with the configured
 * keys each time it is read; every package is checked against the identity the
 * index (or lock) gives for it and against its own signature, from the network and
 * from the cache alike.
 */
export class RepositoryClient {
  readonly #o: RepositoryClientOptions;

  constructor(options: RepositoryClientOptions) {
    this.#o = options;
  }

  #locate(spec: RepositorySpec): Location {
    const loc = spec.location.replace(/\/+$/, '');
    if (/^https?:\/\//.test(loc)) return {kind: 'http', url: loc};
    if (loc.startsWith('file://')) return {kind: 'folder', dir: fileURLToPath(loc)};
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(loc)) {
      throw new PsyError('apk-settings', `repository '${spec.location}': only http(s)://, file:// and folders are supported`);
    }
    return {kind: 'folder', dir: isAbsolute(loc) ? loc : resolve(this.#o.baseDir, loc)};
  }

  /** `<repo>/<arch>/<file>` as a URL or path, for messages. */
  where(spec: RepositorySpec, file: string): string {
    const l = this.#locate(spec);
    return l.kind === 'http' ? `${l.url}/${this.#o.arch}/${file}` : join(l.dir, this.#o.arch, file);
  }

  async index(spec: RepositorySpec): Promise<ApkIndex> {
    const l = this.#locate(spec);
    const where = this.where(spec, 'APKINDEX.tar.gz');
    if (l.kind === 'folder') {
      return readApkIndex(readLocal(where), where, {keyring: this.#o.keyring});
    }
    const cached = join(this.#o.cacheDir, 'indexes', `${sha256(where).slice(0, 32)}-APKINDEX.tar.gz`);
    if (this.#o.offline) {
      if (!existsSync(cached)) {
        throw new PsyError('apk-offline', `offline: no cached index for ${where} (run once online, or use a local repository folder)`);
      }
      return readApkIndex(readFileSync(cached), `${where} (cached)`, {keyring: this.#o.keyring});
    }
    const bytes = await download(where, this.#o.log);
    const index = readApkIndex(bytes, where, {keyring: this.#o.keyring});
    atomicWrite(cached, bytes);
    return index;
  }

  /**
   * The package `name-version` with identity `checksum` from a repository, verified.
   * Remote packages are kept in the cache by identity, so an offline build with a
   * lock needs no index at all.
   */
  async package(spec: RepositorySpec, name: string, version: string, checksum: string): Promise<ApkPackage> {
    const l = this.#locate(spec);
    const file = `${name}-${version}.apk`;
    const where = this.where(spec, file);
    const opts = {keyring: this.#o.keyring, expectedChecksum: checksum};
    if (l.kind === 'folder') return readApk(readLocal(where), where, opts);
    const cached = join(this.#o.cacheDir, 'packages', `${q1Hex(checksum)}.apk`);
    if (existsSync(cached)) return readApk(readFileSync(cached), `${where} (cached)`, opts);
    if (this.#o.offline) {
      throw new PsyError('apk-offline', `offline: ${file} (${checksum}) is not in the package cache; it would come from ${where}`);
    }
    const bytes = await download(where, this.#o.log);
    const pkg = readApk(bytes, where, opts);
    atomicWrite(cached, bytes);
    return pkg;
  }
}

function readLocal(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PsyError('apk-repository', `cannot read ${path} (${code === 'ENOENT' ? 'no such file' : code ?? String(err)})`);
  }
}

async function download(url: string, log?: (line: string) => void): Promise<Buffer> {
  log?.(`fetch ${url}`);
  let res: Response;
  try {
    res = await fetch(url, {signal: AbortSignal.timeout(120_000), redirect: 'follow'});
  } catch (err) {
    const cause = (err as {cause?: {code?: string; message?: string}}).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new PsyError('apk-network', `cannot download ${url}: ${why} (an offline build can use the cache: --offline)`);
  }
  if (!res.ok) throw new PsyError('apk-network', `cannot download ${url}: HTTP ${res.status} ${res.statusText}`.trim());
  try {
    return Buffer.from(await res.arrayBuffer());
  } catch (err) {
    throw new PsyError('apk-network', `cannot download ${url}: transfer failed (${(err as Error).message})`);
  }
}

function atomicWrite(path: string, bytes: Buffer): void {
  mkdirSync(join(path, '..'), {recursive: true});
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Cache file name of a package identity: hex of the SHA-1 in `Q1<base64>`. */
export function q1Hex(checksum: string): string {
  if (!/^Q1[A-Za-z0-9+/]{27}=$/.test(checksum)) throw new PsyError('apk-lock', `'${checksum}' is not a Q1 package checksum`);
  return Buffer.from(checksum.slice(2), 'base64').toString('hex');
}
