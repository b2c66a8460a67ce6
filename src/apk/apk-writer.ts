import {createHash} from 'node:crypto';
import {PsyError} from '../errors.js';
import {q1, type ScriptName} from './apk-package.js';
import {gzipMember} from './gzip-members.js';
import type {SigningKey} from './keys.js';
import {formatPkginfo, isValidPackageName, type PackageMeta} from './package-meta.js';
import {signatureMember, type SignatureAlgorithm} from './signature.js';
import {writeTar, type TarEntryType, type TarWriteEntry} from '../tar/index.js';
import {validateVersion} from './version.js';

/** One path of a package's data section. Paths are relative, without a leading `/`. */
export interface ApkDataEntry {
  readonly path: string;
  readonly type: Extract<TarEntryType, 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo'>;
  readonly mode: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly uname?: string;
  readonly gname?: string;
  /** Defaults to the package's build date. */
  readonly mtime?: number;
  readonly data?: Buffer;
  /** Symlink target, or for hardlinks the package path it links to. */
  readonly linkTarget?: string;
  readonly devMajor?: number;
  readonly devMinor?: number;
}

export interface BuildApkInput {
  /** Metadata; `datahash` and, when 0, `installedSize` are filled in. */
  readonly meta: PackageMeta;
  readonly entries: readonly ApkDataEntry[];
  readonly scripts?: ReadonlyMap<ScriptName, Buffer> | Partial<Record<ScriptName, Buffer | string>>;
  /** Signing key; without one the package is unsigned (only for tests of that case). */
  readonly key: SigningKey | undefined;
  readonly algorithm?: SignatureAlgorithm;
  /** gzip level (abuild uses 9). */
  readonly compressionLevel?: number;
}

export interface BuiltApk {
  readonly bytes: Buffer;
  /** Q1 identity (index `C:`). */
  readonly checksum: string;
  readonly meta: PackageMeta;
}

/**
 * Builds an APK v2 package the way abuild does: a data tar with PAX SHA-1 records,
 * gzip; .PKGINFO with `datahash`; a cut control tar, gzip; an RSA signature over the
 * control member; the three members concatenated. Entries are sorted by path so the
 * bytes depend only on the content; missing parent directories are added (0755, root).
 */
export function buildApk(input: BuildApkInput): BuiltApk {
  const {meta} = input;
  const what = `package ${meta.name}`;
  if (!isValidPackageName(meta.name)) throw new PsyError('apk-build', `${what}: invalid package name`);
  validateVersion(meta.version, what);
  const level = input.compressionLevel ?? 9;
  const mtime = meta.buildDate;

  const seen = new Set<string>();
  const entries = [...input.entries].map((e) => ({...e, path: normalizeDataPath(e.path, what)}));
  for (const e of entries) {
    const key = e.path.replace(/\/$/, '');
    if (seen.has(key)) throw new PsyError('apk-build', `${what}: path ${key} listed twice`);
    seen.add(key);
  }
  // Every directory a path is in gets its own entry (as abuild's `tar -c` of a tree
  // has): apk refuses a file whose directory the package does not list.
  for (const e of [...entries]) {
    const parts = e.path.replace(/\/$/, '').split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (seen.has(dir)) continue;
      seen.add(dir);
      entries.push({path: `${dir}/`, type: 'directory', mode: 0o755});
    }
  }
  entries.sort((a, b) => comparePaths(a.path, b.path));

  let installedSize = 0;
  const tarEntries: TarWriteEntry[] = entries.map((e) => {
    const pax: Array<[string, string]> = [
      ['ctime', '0'],
      ['atime', '0'],
    ];
    if (e.type === 'file') {
      const data = e.data ?? Buffer.alloc(0);
      installedSize += Math.ceil(data.length / 4096) * 4096;
      pax.push(['APK-TOOLS.checksum.SHA1', createHash('sha1').update(data).digest('hex')]);
    } else if (e.type === 'symlink') {
      pax.push([
        'APK-TOOLS.checksum.SHA1',
        createHash('sha1')
          .update(e.linkTarget ?? '')
          .digest('hex'),
      ]);
    }
    return {
      path: e.type === 'directory' ? e.path.replace(/\/?$/, '/') : e.path,
      type: e.type,
      mode: e.mode,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      uname: e.uname ?? (e.uid ? String(e.uid) : 'root'),
      gname: e.gname ?? (e.gid ? String(e.gid) : 'root'),
      mtime: e.mtime ?? mtime,
      data: e.data,
      linkTarget: e.linkTarget,
      devMajor: e.devMajor,
      devMinor: e.devMinor,
      pax,
    };
  });
  const dataGz = gzipMember(writeTar(tarEntries, {recordSize: 10240}), level);
  const fullMeta: PackageMeta = {
    ...meta,
    installedSize: meta.installedSize || installedSize,
    datahash: createHash('sha256').update(dataGz).digest('hex'),
  };

  const control: TarWriteEntry[] = [
    {
      path: '.PKGINFO',
      type: 'file',
      mode: 0o644,
      uname: 'root',
      gname: 'root',
      mtime,
      data: Buffer.from(formatPkginfo(fullMeta)),
      pax: [
        ['ctime', '0'],
        ['atime', '0'],
      ],
    },
  ];
  const scripts =
    input.scripts instanceof Map
      ? [...input.scripts.entries()]
      : Object.entries(input.scripts ?? {}).filter((kv): kv is [ScriptName, Buffer | string] => kv[1] !== undefined);
  for (const [name, body] of [...scripts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    control.push({
      path: `.${name}`,
      type: 'file',
      mode: 0o755,
      uname: 'root',
      gname: 'root',
      mtime,
      data: Buffer.isBuffer(body) ? body : Buffer.from(body),
      pax: [
        ['ctime', '0'],
        ['atime', '0'],
      ],
    });
  }
  const controlGz = gzipMember(writeTar(control, {endOfArchive: false}), level);
  const parts = [controlGz, dataGz];
  if (input.key) parts.unshift(signatureMember(controlGz, input.key, mtime, input.algorithm ?? 'RSA'));
  return {bytes: Buffer.concat(parts), checksum: q1(controlGz), meta: fullMeta};
}

/** Refuses absolute paths and `..`; strips `./`. */
export function normalizeDataPath(path: string, what: string): string {
  const p = path.replace(/^(\.\/)+/, '');
  const trail = p.endsWith('/');
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (path.startsWith('/') || parts.some((s) => s === '..') || parts.length === 0) {
    throw new PsyError('apk-build', `${what}: path '${path}' must be relative and stay inside the package`);
  }
  return parts.join('/') + (trail ? '/' : '');
}

/** Orders paths so a directory comes right before its contents (tar order of `find | sort`). */
export function comparePaths(a: string, b: string): number {
  const pa = a.replace(/\/$/, '').split('/');
  const pb = b.replace(/\/$/, '').split('/');
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}
