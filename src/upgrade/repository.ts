import {lstat, open, readFile, realpath, stat} from 'node:fs/promises';
import {basename, join, resolve} from 'node:path';
import {Readable} from 'node:stream';
import {PsyError} from '../errors.js';
import {createS3Client} from '../s3/client.js';

/**
 * Where updates come from: a local replica folder, an HTTP(S) base URL (redirects
 * followed within its origin, at most MAX_REDIRECTS), or an S3 bucket through the API (the `latest`
 * object's website-redirect header names the real signature). Every read is capped:
 * nothing unauthenticated can make the node read without bound.
 */
export interface Repository {
  readonly description: string;
  /** Reads a small object (a signature), following `latest` pointers. */
  fetchSmall(name: string, cap: number): Promise<{data: Buffer; name: string}>;
  /** The bytes of an object as they arrive, refusing more than `cap` of them. */
  open(name: string, cap: number): Promise<AsyncIterable<Buffer>>;
}

export const MAX_REDIRECTS = 5;

function tooBig(what: string, cap: number): PsyError {
  return new PsyError('oversized-download', `${what} is larger than the ${cap} bytes allowed`);
}

/** A stream's pieces, stopping with an error once more than `cap` bytes arrive. */
async function* capped(body: AsyncIterable<Buffer>, cap: number, what: string): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const chunk of body) {
    n += chunk.length;
    if (n > cap) throw tooBig(what, cap);
    yield chunk;
  }
}

async function cappedBuffer(body: Readable, cap: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += (chunk as Buffer).length;
    if (n > cap) {
      body.destroy();
      throw tooBig(what, cap);
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

function safeName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new PsyError('bad-metadata', `refusing repository object name "${name}"`);
  return name;
}

export class LocalRepository implements Repository {
  readonly #dir: string;
  constructor(dir: string) {
    this.#dir = resolve(dir);
  }
  get description(): string {
    return `local replica ${this.#dir}`;
  }
  async #path(name: string): Promise<string> {
    const p = join(this.#dir, safeName(name));
    try {
      await lstat(p);
    } catch {
      throw new PsyError('not-found', `${name} not found in ${this.description}`);
    }
    return p;
  }
  async fetchSmall(name: string, cap: number): Promise<{data: Buffer; name: string}> {
    const p = await this.#path(name);
    const real = await realpath(p).catch(() => {
      throw new PsyError('not-found', `${name} in ${this.description} points to a missing file`);
    });
    if ((await stat(real)).size > cap) throw tooBig(`${name} in ${this.description}`, cap);
    return {data: await readFile(real), name: basename(real)};
  }
  async open(name: string, cap: number): Promise<AsyncIterable<Buffer>> {
    return this.#read(name, cap);
  }
  /** Opened on the first read and closed when the reading ends or is abandoned. */
  async *#read(name: string, cap: number): AsyncGenerator<Buffer> {
    const fh = await open(await this.#path(name), 'r');
    try {
      if ((await fh.stat()).size > cap) throw tooBig(`${name} in ${this.description}`, cap);
      yield* capped(fh.createReadStream({autoClose: false, highWaterMark: 1 << 20}), cap, name);
    } finally {
      await fh.close();
    }
  }
}

export class HttpRepository implements Repository {
  readonly #base: URL;
  constructor(base: string) {
    this.#base = new URL(base.endsWith('/') ? base : base + '/');
  }
  get description(): string {
    return `repository ${this.#base.href}`;
  }
  async #get(name: string): Promise<{res: Response; url: URL}> {
    let url = new URL(safeName(name), this.#base);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      let res: Response;
      try {
        res = await fetch(url, {redirect: 'manual'});
      } catch (err) {
        throw new PsyError('unreachable', `cannot reach ${url.href}: ${(err as Error).cause ?? (err as Error).message}`);
      }
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        await res.body?.cancel();
        const next = new URL(res.headers.get('location')!, url);
        // only within the repository's own origin: a redirect must not send the node to
        // another host, port or scheme (file://, plain http from https)
        if (next.origin !== this.#base.origin || (next.protocol !== 'http:' && next.protocol !== 'https:')) {
          throw new PsyError('bad-redirect', `${url.href} redirects to ${next.href}, outside ${this.#base.origin}; refused`);
        }
        url = next;
        continue;
      }
      if (res.status === 404) {
        await res.body?.cancel();
        throw new PsyError('not-found', `${name} not found in ${this.description} (${url.href}: 404)`);
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel();
        throw new PsyError('download-failed', `${url.href}: HTTP ${res.status}`);
      }
      return {res, url};
    }
    throw new PsyError('bad-redirect', `${name}: more than ${MAX_REDIRECTS} redirects in ${this.description}`);
  }
  async fetchSmall(name: string, cap: number): Promise<{data: Buffer; name: string}> {
    const {res, url} = await this.#get(name);
    const len = Number(res.headers.get('content-length') ?? '0');
    if (len > cap) {
      await res.body?.cancel();
      throw tooBig(url.href, cap);
    }
    const data = await cappedBuffer(Readable.fromWeb(res.body as never), cap, url.href);
    return {data, name: basename(url.pathname)};
  }
  async open(name: string, cap: number): Promise<AsyncIterable<Buffer>> {
    const {res, url} = await this.#get(name);
    const len = Number(res.headers.get('content-length') ?? '0');
    if (len > cap) {
      await res.body?.cancel();
      throw tooBig(url.href, cap);
    }
    return capped(Readable.fromWeb(res.body as never), cap, url.href);
  }
}

export interface S3Options {
  readonly endpoint?: string;
  readonly region?: string;
  readonly forcePathStyle?: boolean;
}

/** `s3://bucket/prefix`: objects read with the S3 API, `latest` followed through its redirect header. */
export class S3Repository implements Repository {
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #options: S3Options;
  #client: unknown;
  constructor(url: string, options: S3Options = {}) {
    const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
    if (!m) throw new PsyError('usage', `not an S3 URL: ${url} (expected s3://bucket/prefix)`);
    this.#bucket = m[1]!;
    this.#prefix = m[2] ? m[2].replace(/\/?$/, '/') : '';
    this.#options = options;
  }
  get description(): string {
    return `s3://${this.#bucket}/${this.#prefix}`;
  }
  async #s3() {
    let sdk: typeof import('@aws-sdk/client-s3');
    try {
      sdk = await import('@aws-sdk/client-s3');
    } catch {
      throw new PsyError('missing-tool', 's3:// repositories need @aws-sdk/client-s3, which this installation lacks; use the bucket over HTTP(S) instead');
    }
    if (!this.#client) {
      const o = this.#options;
      this.#client = createS3Client(sdk, {region: o.region, endpoint: o.endpoint, forcePathStyle: o.forcePathStyle ?? o.endpoint !== undefined}, process.env);
    }
    return {sdk, client: this.#client as InstanceType<typeof sdk.S3Client>};
  }
  /** Follows website-redirect headers (same bucket only) to the real key. */
  async #resolveKey(name: string): Promise<{key: string; size: number}> {
    const {sdk, client} = await this.#s3();
    let key = this.#prefix + safeName(name);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      let head;
      try {
        head = await client.send(new sdk.HeadObjectCommand({Bucket: this.#bucket, Key: key}));
      } catch (err) {
        const status = (err as {$metadata?: {httpStatusCode?: number}}).$metadata?.httpStatusCode;
        if (status === 404 || (err as Error).name === 'NotFound') throw new PsyError('not-found', `${key} not found in s3://${this.#bucket}`);
        throw new PsyError('unreachable', `S3 HeadObject ${key}: ${(err as Error).message}`);
      }
      const redirect = head.WebsiteRedirectLocation;
      if (!redirect) return {key, size: head.ContentLength ?? 0};
      if (!redirect.startsWith('/')) throw new PsyError('bad-redirect', `${key} redirects to another host (${redirect}); refused`);
      key = redirect.slice(1);
    }
    throw new PsyError('bad-redirect', `${name}: more than ${MAX_REDIRECTS} redirects in ${this.description}`);
  }
  async #body(key: string): Promise<Readable> {
    const {sdk, client} = await this.#s3();
    const res = await client.send(new sdk.GetObjectCommand({Bucket: this.#bucket, Key: key}));
    return res.Body as Readable;
  }
  async fetchSmall(name: string, cap: number): Promise<{data: Buffer; name: string}> {
    const {key, size} = await this.#resolveKey(name);
    if (size > cap) throw tooBig(`s3://${this.#bucket}/${key}`, cap);
    return {data: await cappedBuffer(await this.#body(key), cap, key), name: basename(key)};
  }
  async open(name: string, cap: number): Promise<AsyncIterable<Buffer>> {
    const {key, size} = await this.#resolveKey(name);
    if (size > cap) throw tooBig(`s3://${this.#bucket}/${key}`, cap);
    return capped(await this.#body(key), cap, key);
  }
}

export function openRepository(spec: string, s3: S3Options = {}): Repository {
  if (spec.startsWith('s3://')) return new S3Repository(spec, s3);
  if (/^https?:\/\//.test(spec)) return new HttpRepository(spec);
  return new LocalRepository(spec);
}
