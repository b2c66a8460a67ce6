import type {S3Client} from '@aws-sdk/client-s3';
import {createHash} from 'node:crypto';
import {createReadStream, createWriteStream} from 'node:fs';
import {lstat, mkdir, readdir, readFile, rename, rm, rmdir} from 'node:fs/promises';
import {dirname, join, posix, relative} from 'node:path';
import {pipeline} from 'node:stream/promises';
import {Transform, type Readable} from 'node:stream';
import {PsyError} from '../errors.js';
import {libStorage, s3 as sdk} from './aws-sdk.js';
import {fsyncDir, replaceSymlink, scratchPath} from '../fs/atomic-write.js';
import {PRIVATE_PREFIX} from './layout.js';
import {withReplicaLock} from './replica-lock.js';
import {limiter, loadState, saveState, scanReplica, type LocalEntry, type SyncState} from './local-tree.js';
import {s3Error} from './s3-client.js';
import {type S3Settings} from './settings.js';

/**
 * Phases run in this order so a reader of the bucket (or replica) never follows a
 * pointer to something missing: blobs (tarballs, packages), then what names them
 * (signatures, APK indexes), then redirects (latest), deletions last.
 */
export type SyncPhase = 'blob' | 'signature' | 'redirect' | 'delete';
export const PHASES: readonly SyncPhase[] = ['blob', 'signature', 'redirect', 'delete'];

export type SyncAction =
  | {readonly phase: 'blob' | 'signature'; readonly op: 'transfer'; readonly key: string; readonly size: number; readonly sha256: string | undefined}
  | {readonly phase: 'redirect'; readonly op: 'redirect'; readonly key: string; readonly target: string}
  | {readonly phase: 'delete'; readonly op: 'delete'; readonly key: string};

export interface SyncPlan {
  readonly direction: 'push' | 'pull';
  readonly actions: readonly SyncAction[];
  /** Keys already equal on both sides. */
  readonly unchanged: number;
}

export interface SyncProgress {
  readonly key: string;
  readonly loaded: number;
  readonly total: number;
}

export interface SyncOptions {
  readonly root: string;
  readonly client: S3Client;
  readonly s3: S3Settings;
  readonly dryRun?: boolean;
  /** Called after each action completes (crash tests, progress lines). */
  readonly onStep?: (step: string) => void | Promise<void>;
  readonly onProgress?: (p: SyncProgress) => void;
  /** ListObjectsV2 page size (tests use a small one to exercise pagination). */
  readonly pageSize?: number;
}

export interface SyncResult {
  readonly plan: SyncPlan;
  readonly uploaded: number;
  readonly downloaded: number;
  readonly redirects: number;
  readonly deleted: number;
  readonly bytes: number;
}

const SHA_META = 'psy-sha256';

interface RemoteObject {
  readonly key: string;
  readonly size: number;
  readonly etag: string;
}

interface RemoteInfo {
  sha256?: string | undefined;
  redirect?: string | undefined;
}

function phaseOf(key: string): 'blob' | 'signature' {
  return /\.minisig$/.test(key) || /(^|\/)APKINDEX\.tar\.gz$/.test(key) ? 'signature' : 'blob';
}

function contentType(key: string): string {
  if (key.endsWith('.minisig')) return 'text/plain; charset=utf-8';
  if (key.endsWith('.tar')) return 'application/x-tar';
  if (key.endsWith('.gz') || key.endsWith('.apk')) return 'application/gzip';
  if (key.endsWith('.html')) return 'text/html; charset=utf-8';
  if (key.endsWith('.json')) return 'application/json';
  return 'application/octet-stream';
}

function remoteId(s: S3Settings): string {
  return `${s.endpoint ?? 'aws'}|${s.bucket}|${s.prefix}`;
}

async function listRemote(opts: SyncOptions): Promise<Map<string, RemoteObject>> {
  const out = new Map<string, RemoteObject>();
  let token: string | undefined;
  try {
    do {
      const r = await opts.client.send(
        new sdk.ListObjectsV2Command({
          Bucket: opts.s3.bucket,
          Prefix: opts.s3.prefix || undefined,
          ContinuationToken: token,
          MaxKeys: opts.pageSize,
        }),
      );
      for (const o of r.Contents ?? []) {
        if (o.Key === undefined) continue;
        const key = o.Key.slice(opts.s3.prefix.length);
        if (key === '' || key.endsWith('/')) continue;
        out.set(key, {key, size: o.Size ?? 0, etag: (o.ETag ?? '').replace(/"/g, '')});
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token !== undefined);
  } catch (err) {
    throw s3Error(err, opts.s3, 'listing');
  }
  return out;
}

async function headRemote(opts: SyncOptions, key: string): Promise<RemoteInfo> {
  try {
    const h = await opts.client.send(new sdk.HeadObjectCommand({Bucket: opts.s3.bucket, Key: opts.s3.prefix + key}));
    return {sha256: h.Metadata?.[SHA_META], redirect: h.WebsiteRedirectLocation};
  } catch (err) {
    throw s3Error(err, opts.s3, `reading ${key} from`);
  }
}

/** Runs `fn` over `items` with at most `limit` in flight; the first failure wins. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker));
  if (failed !== undefined) throw failed;
}

/**
 * What the bucket holds, with content hashes: from the cached sync state when the
 * listing's ETag and size still match, otherwise (and for every zero-byte object, which
 * may be a redirect) from HeadObject.
 */
async function describeRemote(opts: SyncOptions, state: SyncState): Promise<Map<string, RemoteObject & RemoteInfo>> {
  const listing = await listRemote(opts);
  const cache = state.remotes[remoteId(opts.s3)] ?? {};
  const out = new Map<string, RemoteObject & RemoteInfo>();
  const toHead: RemoteObject[] = [];
  for (const o of listing.values()) {
    const c = cache[o.key];
    if (o.size > 0 && c && c.etag === o.etag && c.size === o.size) out.set(o.key, {...o, sha256: c.sha256});
    else toHead.push(o);
  }
  await pool(toHead, Math.max(opts.s3.concurrency, 16), async (o) => {
    const info = await headRemote(opts, o.key);
    out.set(o.key, {...o, ...info});
    // next time the listing alone says this object is unchanged
    if (o.size > 0 && info.redirect === undefined && info.sha256 !== undefined) remember(state, opts.s3, o.key, o.etag, o.size, info.sha256);
  });
  return out;
}

function remember(state: SyncState, s: S3Settings, key: string, etag: string | undefined, size: number, sha256: string): void {
  if (etag === undefined) return;
  (state.remotes[remoteId(s)] ??= {})[key] = {etag: etag.replace(/"/g, ''), size, sha256};
}

function forget(state: SyncState, s: S3Settings, key: string): void {
  const r = state.remotes[remoteId(s)];
  if (r) delete r[key];
}

function sortActions(actions: SyncAction[]): SyncAction[] {
  return actions.sort((a, b) => PHASES.indexOf(a.phase) - PHASES.indexOf(b.phase) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function redirectLocation(s: S3Settings, targetKey: string): string {
  return `/${s.prefix}${targetKey}`;
}

export function planPush(local: Map<string, LocalEntry>, remote: Map<string, RemoteObject & RemoteInfo>, s: S3Settings): SyncPlan {
  const actions: SyncAction[] = [];
  let unchanged = 0;
  for (const e of local.values()) {
    const r = remote.get(e.key);
    if (e.type === 'file') {
      if (r && r.redirect === undefined && r.sha256 === e.sha256 && r.size === e.size) unchanged++;
      else actions.push({phase: phaseOf(e.key), op: 'transfer', key: e.key, size: e.size, sha256: e.sha256});
    } else {
      const loc = redirectLocation(s, e.target);
      if (r && r.redirect === loc) unchanged++;
      else actions.push({phase: 'redirect', op: 'redirect', key: e.key, target: e.target});
    }
  }
  for (const key of remote.keys()) if (!local.has(key)) actions.push({phase: 'delete', op: 'delete', key});
  return {direction: 'push', actions: sortActions(actions), unchanged};
}

/** Makes the bucket equal to the replica. */
export async function push(opts: SyncOptions): Promise<SyncResult> {
  return withReplicaLock(opts.root, 'psy deaddrop forcepush', () => pushLocked(opts));
}

async function pushLocked(opts: SyncOptions): Promise<SyncResult> {
  const state = await loadState(opts.root);
  const s = opts.s3;
  const remoteP = describeRemote(opts, state);
  remoteP.catch(() => undefined);
  const result = {
    plan: {direction: 'push' as const, actions: [] as SyncAction[], unchanged: 0},
    uploaded: 0,
    downloaded: 0,
    redirects: 0,
    deleted: 0,
    bytes: 0,
  };
  // Blobs go first in any case, so each one is uploaded as soon as it is hashed and
  // known to differ, overlapping hashing with the network.
  const transfers = limiter(s.concurrency);
  const early = new Map<string, Promise<void>>();
  const upload = (e: Extract<LocalEntry, {type: 'file'}>): Promise<void> =>
    transfers(async () => {
      const etag = await uploadFile(opts, e);
      remember(state, s, e.key, etag, e.size, e.sha256);
      result.uploaded++;
      result.bytes += e.size;
      await opts.onStep?.(`blob:${e.key}`);
    });
  const onFile = opts.dryRun
    ? undefined
    : (e: Extract<LocalEntry, {type: 'file'}>): void => {
        if (phaseOf(e.key) !== 'blob') return;
        const p = remoteP.then((remote) => {
          const r = remote.get(e.key);
          if (r && r.redirect === undefined && r.sha256 === e.sha256 && r.size === e.size) return;
          return upload(e);
        });
        p.catch(() => undefined);
        early.set(e.key, p);
      };
  let local: Map<string, LocalEntry>;
  let remote: Awaited<typeof remoteP>;
  try {
    [local, remote] = await Promise.all([scanReplica(opts.root, state, onFile), remoteP]);
  } catch (err) {
    await Promise.allSettled(early.values());
    throw err;
  }
  const plan = planPush(local, remote, opts.s3);
  result.plan = plan as typeof result.plan;
  if (opts.dryRun) return result;
  try {
    const settled = await Promise.allSettled(early.values());
    const failed = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed) throw failed.reason;
    for (const phase of PHASES) {
      const actions = plan.actions.filter((a) => a.phase === phase);
      if (actions.length === 0) continue;
      if (phase === 'delete') {
        for (let i = 0; i < actions.length; i += 1000) {
          const batch = actions.slice(i, i + 1000);
          const r = await opts.client
            .send(new sdk.DeleteObjectsCommand({Bucket: s.bucket, Delete: {Objects: batch.map((a) => ({Key: s.prefix + a.key})), Quiet: true}}))
            .catch((err: unknown) => {
              throw s3Error(err, s, 'deleting from');
            });
          const errors = r.Errors ?? [];
          if (errors.length > 0) throw new PsyError('s3-error', `deleting ${errors[0]!.Key} from s3://${s.bucket}: ${errors[0]!.Code}`);
          for (const a of batch) forget(state, s, a.key);
          result.deleted += batch.length;
          await opts.onStep?.(`delete:${batch.length}`);
        }
        continue;
      }
      await pool(
        actions.filter((a) => !early.has(a.key)),
        s.concurrency,
        async (a) => {
          const e = local.get(a.key)!;
          if (a.op === 'redirect') {
            await opts.client
              .send(
                new sdk.PutObjectCommand({
                  Bucket: s.bucket,
                  Key: s.prefix + a.key,
                  Body: Buffer.alloc(0),
                  ContentLength: 0,
                  WebsiteRedirectLocation: redirectLocation(s, a.target),
                  ContentType: contentType(a.key),
                }),
              )
              .catch((err: unknown) => {
                throw s3Error(err, s, `writing redirect ${a.key} to`);
              });
            forget(state, s, a.key);
            result.redirects++;
          } else if (e.type === 'file') {
            const etag = await uploadFile(opts, e);
            remember(state, s, e.key, etag, e.size, e.sha256);
            result.uploaded++;
            result.bytes += e.size;
          }
          await opts.onStep?.(`${a.phase}:${a.key}`);
        },
      );
    }
  } finally {
    await saveState(opts.root, state);
  }
  return result;
}

async function uploadFile(opts: SyncOptions, e: Extract<LocalEntry, {type: 'file'}>): Promise<string | undefined> {
  const s = opts.s3;
  const params = {Bucket: s.bucket, Key: s.prefix + e.key, ContentType: contentType(e.key), Metadata: {[SHA_META]: e.sha256}};
  try {
    if (e.size < s.multipartThreshold) {
      // A known length and no aws-chunked encoding (checksums WHEN_REQUIRED) keep the
      // body byte-exact on every server; small files go as one Buffer.
      const body = e.size <= 8 * 2 ** 20 ? await readFile(e.path) : countingStream(e, opts.onProgress);
      const cmd = new sdk.PutObjectCommand({...params, Body: body, ContentLength: e.size});
      // SigV4 signs the payload's sha256; we already have it, so spare the SDK a second pass
      cmd.middlewareStack.add(
        (next) => async (args) => {
          const req = args.request as {headers?: Record<string, string>};
          if (req.headers) req.headers['x-amz-content-sha256'] = e.sha256;
          return next(args);
        },
        {step: 'build', name: 'psyKnownPayloadHash'},
      );
      const r = await opts.client.send(cmd);
      if (e.size <= 8 * 2 ** 20) opts.onProgress?.({key: e.key, loaded: e.size, total: e.size});
      return r.ETag;
    }
    const {Upload} = libStorage();
    const upload = new Upload({
      client: opts.client,
      params: {...params, Body: createReadStream(e.path, {highWaterMark: 1 << 20})},
      partSize: s.partSize,
      queueSize: 4,
      leavePartsOnError: false,
    });
    upload.on('httpUploadProgress', (p) => opts.onProgress?.({key: e.key, loaded: p.loaded ?? 0, total: e.size}));
    const r = await upload.done();
    return r.ETag;
  } catch (err) {
    throw s3Error(err, s, `uploading ${e.key} to`);
  }
}

/** The file as a stream that reports how much of it was read (sent) so far. */
function countingStream(e: Extract<LocalEntry, {type: 'file'}>, onProgress: SyncOptions['onProgress']): Readable {
  let loaded = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      loaded += chunk.length;
      onProgress?.({key: e.key, loaded, total: e.size});
      done(null, chunk);
    },
  });
  const source = createReadStream(e.path, {highWaterMark: 1 << 20});
  source.on('error', (err) => counter.destroy(err));
  return source.pipe(counter);
}

/** Accepts a redirect only when it stays in this bucket (and prefix); returns the target key. */
export function redirectTarget(s: S3Settings, key: string, location: string): string {
  let path: string;
  if (location.startsWith('/')) {
    path = location;
  } else if (/^https?:\/\//i.test(location)) {
    const base = s.publicUrl?.replace(/\/+$/, '');
    const url = new URL(location);
    if (base === undefined || !location.startsWith(`${base}/`)) {
      throw new PsyError('foreign-redirect', `${key}: redirect to foreign host ${url.host} refused (${location})`);
    }
    path = location.slice(base.length);
  } else {
    throw new PsyError('foreign-redirect', `${key}: redirect '${location}' is neither a path nor an http(s) URL`);
  }
  const prefix = `/${s.prefix}`;
  if (!path.startsWith(prefix)) throw new PsyError('foreign-redirect', `${key}: redirect ${location} leaves s3://${s.bucket}/${s.prefix}`);
  const target = posix.normalize(path.slice(prefix.length));
  if (target.startsWith('..') || target.startsWith('/') || target === '.' || target.split('/').some((p) => p.startsWith(PRIVATE_PREFIX))) {
    throw new PsyError('foreign-redirect', `${key}: redirect ${location} leaves the bucket prefix`);
  }
  return target;
}

async function localMd5(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** Makes the replica equal to the bucket. */
export async function pull(opts: SyncOptions): Promise<SyncResult> {
  return withReplicaLock(opts.root, 'psy deaddrop forcepull', () => pullLocked(opts));
}

async function pullLocked(opts: SyncOptions): Promise<SyncResult> {
  const s = opts.s3;
  const state = await loadState(opts.root);
  const local = await scanReplica(opts.root, state).catch(async (err: unknown) => {
    // a broken local link must not block a pull, which is how it gets repaired
    if ((err as PsyError).code === 'bad-replica') return new Map<string, LocalEntry>();
    throw err;
  });
  const remote = await describeRemote(opts, state);
  const actions: SyncAction[] = [];
  let unchanged = 0;
  for (const r of remote.values()) {
    const l = local.get(r.key);
    if (r.redirect !== undefined) {
      const target = redirectTarget(s, r.key, r.redirect);
      if (!remote.has(target)) throw new PsyError('bad-remote', `${r.key}: redirect to ${target}, which is not in the bucket`);
      if (l?.type === 'redirect' && l.target === target) unchanged++;
      else actions.push({phase: 'redirect', op: 'redirect', key: r.key, target});
      continue;
    }
    let same = false;
    if (l?.type === 'file' && l.size === r.size) {
      if (r.sha256 !== undefined) same = r.sha256 === l.sha256;
      else if (/^[0-9a-f]{32}$/.test(r.etag)) same = (await localMd5(l.path)) === r.etag;
    }
    if (same) unchanged++;
    else actions.push({phase: phaseOf(r.key), op: 'transfer', key: r.key, size: r.size, sha256: r.sha256});
  }
  // local entries the bucket lacks, plus whatever a damaged scan could not describe
  const present = await listLocalKeys(opts.root);
  for (const key of present) if (!remote.has(key)) actions.push({phase: 'delete', op: 'delete', key});
  const plan: SyncPlan = {direction: 'pull', actions: sortActions(actions), unchanged};
  const result = {plan, uploaded: 0, downloaded: 0, redirects: 0, deleted: 0, bytes: 0};
  if (opts.dryRun) return result;
  try {
    for (const phase of PHASES) {
      const batch = plan.actions.filter((a) => a.phase === phase);
      await pool(batch, phase === 'delete' ? 1 : s.concurrency, async (a) => {
        const path = join(opts.root, ...a.key.split('/'));
        if (a.op === 'transfer') {
          await download(opts, a.key, path, a.size, a.sha256);
          result.downloaded++;
          result.bytes += a.size;
        } else if (a.op === 'redirect') {
          await mkdir(dirname(path), {recursive: true});
          const target = join(opts.root, ...a.target.split('/'));
          const st = await lstat(path).catch(() => undefined);
          if (st?.isDirectory()) await rm(path, {recursive: true});
          await replaceSymlink(relative(dirname(path), target), path);
          result.redirects++;
        } else {
          await rm(path, {force: true});
          await pruneEmptyDirs(opts.root, dirname(path));
          result.deleted++;
        }
        await opts.onStep?.(`${a.phase}:${a.key}`);
      });
    }
  } finally {
    await saveState(opts.root, state);
  }
  return result;
}

async function listLocalKeys(root: string, dir = root, out: string[] = []): Promise<string[]> {
  for (const e of await readdir(dir, {withFileTypes: true})) {
    if (e.name.startsWith(PRIVATE_PREFIX)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await listLocalKeys(root, p, out);
    else out.push(relative(root, p).split('\\').join('/'));
  }
  return out;
}

async function pruneEmptyDirs(root: string, dir: string): Promise<void> {
  while (dir !== root && dir.startsWith(root)) {
    try {
      await rmdir(dir);
    } catch {
      return;
    }
    dir = dirname(dir);
  }
}

async function download(opts: SyncOptions, key: string, path: string, size: number, sha256: string | undefined): Promise<void> {
  const s = opts.s3;
  await mkdir(dirname(path), {recursive: true});
  const tmp = scratchPath(path);
  try {
    const r = await opts.client.send(new sdk.GetObjectCommand({Bucket: s.bucket, Key: s.prefix + key}));
    const h = createHash('sha256');
    let loaded = 0;
    const body = r.Body as Readable;
    body.on('data', (c: Buffer) => {
      h.update(c);
      loaded += c.length;
      opts.onProgress?.({key, loaded, total: size});
    });
    await pipeline(body, createWriteStream(tmp, {flush: true}));
    const got = h.digest('hex');
    if (sha256 !== undefined && got !== sha256) {
      throw new PsyError('bad-remote', `${key}: downloaded content does not match its recorded sha256 (${got} ≠ ${sha256})`);
    }
    if (loaded !== size) throw new PsyError('bad-remote', `${key}: got ${loaded} bytes, the listing says ${size}`);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory()) await rm(path, {recursive: true});
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    await rm(tmp, {force: true});
    throw err instanceof PsyError ? err : s3Error(err, s, `downloading ${key} from`);
  }
}
