import {createHash} from 'node:crypto';
import {existsSync, mkdirSync, readFileSync} from 'node:fs';
import {isAbsolute, join, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {PsyError} from '../errors.js';
import {writeFileAtomicSync} from '../fs/atomic-write.js';
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
  /** Called as download bytes arrive. */
  readonly progress?: DownloadProgress;
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
    const bytes = await download(where, {log: this.#o.log, progress: this.#o.progress, maxBytes: MAX_INDEX_DOWNLOAD});
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
    const bytes = await download(where, {log: this.#o.log, progress: this.#o.progress, maxBytes: MAX_PACKAGE_DOWNLOAD});
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
    throw new PsyError('apk-repository', `cannot read ${path} (${code === 'ENOENT' ? 'no such file' : (code ?? String(err))})`);
  }
}

/** Bytes received so far of one download, for a progress display. */
export type DownloadProgress = (url: string, received: number, total: number | undefined) => void;

export interface DownloadOptions {
  readonly log?: (line: string) => void;
  readonly progress?: DownloadProgress;
  /** Tries in all, resuming from the bytes already received. Default 4. */
  readonly attempts?: number;
  /** Refuse a body larger than this (a hostile or broken server streaming without end). */
  readonly maxBytes?: number;
}

/** Largest APKINDEX.tar.gz fetched: Alpine's biggest (community, x86_64) is a few MiB. */
export const MAX_INDEX_DOWNLOAD = 64 << 20;
/** Largest package fetched: what psy holds in memory to verify a package at all. */
export const MAX_PACKAGE_DOWNLOAD = 1024 << 20;

/** A download that failed: `why` is the reason alone (ENOTFOUND, HTTP 404, ...). */
export class DownloadError extends PsyError {
  constructor(
    readonly url: string,
    readonly why: string,
    hint = '',
  ) {
    super('apk-network', `cannot download ${url}: ${why}${hint}`);
  }
}

/** Failures of the connection itself that a retry may cure (not a name that does not resolve). */
const TRANSIENT = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);

/**
 * Downloads `url` whole. A transfer cut off half-way is resumed with a Range request
 * (or started over when the server ignores ranges), a few times with a short pause; a
 * name that does not resolve or a refused connection fails at once.
 */
export async function download(url: string, options: DownloadOptions = {}): Promise<Buffer> {
  const attempts = options.attempts ?? 4;
  const maxBytes = options.maxBytes ?? Infinity;
  options.log?.(`fetch ${url}`);
  const chunks: Buffer[] = [];
  let received = 0;
  let lastWhy = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (attempt > 1) await new Promise((r) => setTimeout(r, 250 * (attempt - 1)));
    let res: Response;
    try {
      const headers: Record<string, string> = received > 0 ? {range: `bytes=${received}-`} : {};
      res = await fetch(url, {signal: AbortSignal.timeout(120_000), redirect: 'follow', headers});
    } catch (err) {
      const why = errorCode(err);
      if (!TRANSIENT.has(why) || attempt === attempts) {
        throw new DownloadError(url, why, ' (an offline build can use the cache: --offline)');
      }
      lastWhy = why;
      continue;
    }
    if (res.status >= 500 && attempt < attempts) {
      lastWhy = `HTTP ${res.status}`;
      await res.body?.cancel();
      continue;
    }
    if (received > 0 && res.status === 200) {
      // the server ignored the range: start over
      chunks.length = 0;
      received = 0;
    } else if (received > 0 && !(res.status === 206 && res.headers.get('content-range')?.startsWith(`bytes ${received}-`))) {
      throw new DownloadError(url, `resuming at byte ${received} got HTTP ${res.status}`);
    }
    if (!res.ok) throw new DownloadError(url, `HTTP ${res.status} ${res.statusText}`.trim());
    // a body decoded on the way (Content-Encoding) has no length or ranges in our bytes
    const encoded = res.headers.get('content-encoding') !== null;
    const length = encoded ? NaN : Number(res.headers.get('content-length') ?? NaN);
    const total = Number.isFinite(length) ? received + length : undefined;
    if (total !== undefined && total > maxBytes) {
      await res.body?.cancel();
      throw new DownloadError(url, `the server announces ${total} bytes, more than the ${maxBytes} allowed`);
    }
    try {
      for await (const chunk of res.body ?? []) {
        const b = Buffer.from(chunk as Uint8Array);
        received += b.length;
        if (received > maxBytes) {
          await res.body?.cancel().catch(() => {});
          throw new DownloadError(url, `body goes past the ${maxBytes} bytes allowed`);
        }
        chunks.push(b);
        options.progress?.(url, received, total);
      }
    } catch (err) {
      if (err instanceof DownloadError) throw err;
      lastWhy = `transfer cut off after ${received}${total === undefined ? '' : ` of ${total}`} bytes (${errorCode(err)})`;
      if (encoded) {
        chunks.length = 0; // decoded bytes cannot be resumed: start over
        received = 0;
      }
      continue;
    }
    if (total !== undefined && received < total) {
      lastWhy = `transfer cut off after ${received} of ${total} bytes`;
      continue;
    }
    return Buffer.concat(chunks, received);
  }
  throw new DownloadError(url, `${lastWhy}, ${attempts} tries`);
}

function errorCode(err: unknown): string {
  let e = err as {cause?: unknown; code?: string; message?: string} | undefined;
  // undici wraps the socket's error: "fetch failed" / "terminated" <- cause <- code
  while (e?.cause && typeof e.cause === 'object') e = e.cause as typeof e;
  return e?.code ?? e?.message ?? String(err);
}

function atomicWrite(path: string, bytes: Buffer): void {
  mkdirSync(join(path, '..'), {recursive: true});
  writeFileAtomicSync(path, bytes);
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Cache file name of a package identity: hex of the SHA-1 in `Q1<base64>`. */
export function q1Hex(checksum: string): string {
  if (!/^Q1[A-Za-z0-9+/]{27}=$/.test(checksum)) throw new PsyError('apk-lock', `'${checksum}' is not a Q1 package checksum`);
  return Buffer.from(checksum.slice(2), 'base64').toString('hex');
}
