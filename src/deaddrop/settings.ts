import {isAbsolute, resolve} from 'node:path';
import {PsyError} from '../errors.js';
import {isValidId} from './layout.js';

/** Which build target makes an artifact, and which of its named outputs is the file. */
export interface TargetRef {
  readonly target: string;
  /** Named output of the target; default: its only output. */
  readonly output?: string | undefined;
}

export interface OstarSetting extends TargetRef {
  /** Architecture in file names (x86_64, aarch64). */
  readonly arch: string;
  /** Kernel architecture for the trusted comment (x86_64, arm64); derived from arch by default. */
  readonly architecture: string;
  /** Extra trusted comment fields (e.g. kernel/alpine when the tarball lacks them). */
  readonly fields: Readonly<Record<string, string>>;
}

export interface EsptarSetting extends TargetRef {
  /** Platform in file names (x86_64-uefi, aarch64-rpi4uboot). */
  readonly platform: string;
  readonly fields: Readonly<Record<string, string>>;
}

export interface S3Settings {
  readonly bucket: string;
  /** Key prefix inside the bucket ('' or ending in '/'). */
  readonly prefix: string;
  readonly region?: string | undefined;
  /** S3-compatible endpoint URL (default: AWS). */
  readonly endpoint?: string | undefined;
  readonly forcePathStyle: boolean;
  /** Parallel transfers. */
  readonly concurrency: number;
  /**
   * Files at least this large go up in parts (default 200 MiB, as rclone: below that a
   * single streamed PUT signed with the already known sha256 costs one read of the file;
   * parts cost a second hashing pass in the SDK).
   */
  readonly multipartThreshold: number;
  readonly partSize: number;
  /** Absolute redirect URLs under this base are accepted on pull (others are foreign). */
  readonly publicUrl?: string | undefined;
}

export interface DeaddropSettings {
  /** Replica root, absolute. */
  readonly root: string;
  readonly keep: number;
  readonly ostar: readonly OstarSetting[];
  readonly esptar: readonly EsptarSetting[];
  readonly apk?: TargetRef | undefined;
  readonly s3?: S3Settings | undefined;
}

export const DEFAULT_REPLICA = 'cache/deaddrop';
const KERNEL_ARCH: Record<string, string> = {x86_64: 'x86_64', aarch64: 'arm64', armv7: 'arm', riscv64: 'riscv'};

type Obj = Record<string, unknown>;

function fail(path: string, what: string): never {
  throw new PsyError('bad-config', `settings.deaddrop${path}: ${what}`);
}

function obj(v: unknown, path: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(path, 'must be an object');
  return v as Obj;
}

function only(o: Obj, path: string, keys: readonly string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) fail(`${path}.${k}`, `unknown setting (known: ${keys.join(', ')})`);
}

function str(o: Obj, k: string, path: string, required: true): string;
function str(o: Obj, k: string, path: string, required?: false): string | undefined;
function str(o: Obj, k: string, path: string, required = false): string | undefined {
  const v = o[k];
  if (v === undefined) {
    if (required) fail(`${path}.${k}`, 'is required');
    return undefined;
  }
  if (typeof v !== 'string' || v.length === 0) fail(`${path}.${k}`, 'must be a non-empty string');
  return v;
}

function int(o: Obj, k: string, path: string, dflt: number, min: number): number {
  const v = o[k];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(`${path}.${k}`, `must be an integer ≥ ${min}`);
  return v;
}

function fields(o: Obj, path: string): Record<string, string> {
  const v = o['fields'];
  if (v === undefined) return {};
  const f = obj(v, `${path}.fields`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(f)) {
    if (typeof x !== 'string' && typeof x !== 'number') fail(`${path}.fields.${k}`, 'must be a string or number');
    out[k] = String(x);
  }
  return out;
}

function list(v: unknown, path: string): Obj[] {
  if (v === undefined) return [];
  const items = Array.isArray(v) ? v : [v];
  return items.map((x, i) => obj(x, Array.isArray(v) ? `${path}[${i}]` : path));
}

function id(value: string, path: string): string {
  if (!isValidId(value)) fail(path, `'${value}' may only hold letters, digits, '_' and '-'`);
  return value;
}

/** Validates `config.settings.deaddrop`; paths resolve against the project root. */
export function parseDeaddropSettings(value: unknown, projectRoot: string): DeaddropSettings {
  const o = value === undefined ? {} : obj(value, '');
  only(o, '', ['root', 'keep', 'ostar', 'esptar', 'apk', 's3']);
  const root = str(o, 'root', '') ?? DEFAULT_REPLICA;
  const ostar = list(o['ostar'], '.ostar').map((x, i) => {
    const p = `.ostar${Array.isArray(o['ostar']) ? `[${i}]` : ''}`;
    only(x, p, ['target', 'output', 'arch', 'architecture', 'fields']);
    const arch = id(str(x, 'arch', p, true), `${p}.arch`);
    const architecture = str(x, 'architecture', p) ?? KERNEL_ARCH[arch] ?? arch;
    return {target: str(x, 'target', p, true), output: str(x, 'output', p), arch, architecture, fields: fields(x, p)};
  });
  const esptar = list(o['esptar'], '.esptar').map((x, i) => {
    const p = `.esptar${Array.isArray(o['esptar']) ? `[${i}]` : ''}`;
    only(x, p, ['target', 'output', 'platform', 'fields']);
    return {target: str(x, 'target', p, true), output: str(x, 'output', p), platform: id(str(x, 'platform', p, true), `${p}.platform`), fields: fields(x, p)};
  });
  let apk: TargetRef | undefined;
  if (o['apk'] !== undefined) {
    const a = obj(o['apk'], '.apk');
    only(a, '.apk', ['target', 'output']);
    apk = {target: str(a, 'target', '.apk', true), output: str(a, 'output', '.apk')};
  }
  return {
    root: isAbsolute(root) ? root : resolve(projectRoot, root),
    keep: int(o, 'keep', '', 3, 1),
    ostar,
    esptar,
    apk,
    s3: o['s3'] === undefined ? undefined : parseS3Settings(o['s3']),
  };
}

export function parseS3Settings(value: unknown): S3Settings {
  const s = obj(value, '.s3');
  only(s, '.s3', ['bucket', 'prefix', 'region', 'endpoint', 'forcePathStyle', 'concurrency', 'multipartThreshold', 'partSize', 'publicUrl']);
  const bucket = str(s, 'bucket', '.s3', true);
  let prefix = str(s, 'prefix', '.s3') ?? '';
  prefix = prefix.replace(/^\/+/, '');
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  const endpoint = str(s, 'endpoint', '.s3');
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) fail('.s3.endpoint', `'${endpoint}' is not an http(s) URL`);
  const publicUrl = str(s, 'publicUrl', '.s3');
  if (publicUrl !== undefined && !/^https?:\/\/[^/]+/.test(publicUrl)) fail('.s3.publicUrl', `'${publicUrl}' is not an http(s) URL`);
  const fps = s['forcePathStyle'];
  if (fps !== undefined && typeof fps !== 'boolean') fail('.s3.forcePathStyle', 'must be true or false');
  const partSize = int(s, 'partSize', '.s3', 16 * 2 ** 20, 5 * 2 ** 20);
  return {
    bucket,
    prefix,
    region: str(s, 'region', '.s3'),
    endpoint,
    forcePathStyle: fps ?? endpoint !== undefined,
    concurrency: int(s, 'concurrency', '.s3', 8, 1),
    multipartThreshold: int(s, 'multipartThreshold', '.s3', 200 * 2 ** 20, partSize),
    partSize,
    publicUrl,
  };
}
