import {PsyError, printable} from '../errors.js';

/**
 * What apk knows about a package: the union of .PKGINFO fields and index/installed
 * record letters. Lists hold dependency strings as written (`so:libc.musl-x86_64.so.1`,
 * `musl>=1.2`, `!sudo`).
 */
export interface PackageMeta {
  readonly name: string;
  readonly version: string;
  readonly arch: string;
  readonly description: string;
  readonly url: string;
  readonly license: string;
  readonly origin: string;
  readonly maintainer: string;
  readonly buildDate: number;
  readonly commit: string;
  /** Installed size in bytes (`size`/`I:`). */
  readonly installedSize: number;
  readonly providerPriority: number | undefined;
  readonly depends: readonly string[];
  readonly provides: readonly string[];
  readonly installIf: readonly string[];
  readonly replaces: readonly string[];
  readonly replacesPriority: number | undefined;
  readonly triggers: readonly string[];
  /** Hex SHA-256 of the compressed data member (.PKGINFO only). */
  readonly datahash: string | undefined;
}

/** An index or installed-db record: metadata plus identity and file size. */
export interface IndexRecord extends PackageMeta {
  /** `Q1` + base64 SHA-1 of the control member: the package's identity. */
  readonly checksum: string;
  /** Size of the .apk file in bytes. */
  readonly size: number;
}

export function emptyMeta(name: string, version: string): PackageMeta {
  return {
    name,
    version,
    arch: 'noarch',
    description: '',
    url: '',
    license: '',
    origin: name,
    maintainer: '',
    buildDate: 0,
    commit: '',
    installedSize: 0,
    providerPriority: undefined,
    depends: [],
    provides: [],
    installIf: [],
    replaces: [],
    replacesPriority: undefined,
    triggers: [],
    datahash: undefined,
  };
}

/** A size, date or priority: a plain decimal integer, never NaN or negative. */
function count(value: string, field: string, what: string): number {
  const v = value.trim();
  if (!/^[0-9]{1,15}$/.test(v)) throw new PsyError('apk-corrupt', `${what}: ${field} is not a number: ${JSON.stringify(v.slice(0, 40))}`);
  return Number(v);
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;

export function isValidPackageName(name: string): boolean {
  return NAME_RE.test(name);
}

/** Parses .PKGINFO (`key = value` lines, `#` comments, repeatable list keys). */
export function parsePkginfo(text: string, what: string): PackageMeta {
  const f = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf(' = ');
    if (eq < 0) throw new PsyError('apk-corrupt', `${what}: .PKGINFO line without ' = ': ${printable(line.slice(0, 60))}`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 3);
    f.set(key, [...(f.get(key) ?? []), value]);
  }
  const one = (k: string) => f.get(k)?.[0] ?? '';
  const list = (k: string) => (f.get(k) ?? []).flatMap((v) => v.split(/\s+/).filter(Boolean));
  const num = (k: string) => (f.has(k) ? count(one(k), `.PKGINFO ${k}`, what) : undefined);
  const name = one('pkgname');
  const version = one('pkgver');
  if (!name || !version) throw new PsyError('apk-corrupt', `${what}: .PKGINFO lacks pkgname or pkgver`);
  return {
    name,
    version,
    arch: one('arch') || 'noarch',
    description: one('pkgdesc'),
    url: one('url'),
    license: one('license'),
    origin: one('origin') || name,
    maintainer: one('maintainer'),
    buildDate: num('builddate') ?? 0,
    commit: one('commit'),
    installedSize: num('size') ?? 0,
    providerPriority: num('provider_priority'),
    depends: list('depend'),
    provides: list('provides'),
    installIf: list('install_if'),
    replaces: list('replaces'),
    replacesPriority: num('replaces_priority'),
    triggers: list('triggers'),
    datahash: f.has('datahash') ? one('datahash') : undefined,
  };
}

/** Writes .PKGINFO in abuild's field order (datahash last, as abuild appends it). */
export function formatPkginfo(m: PackageMeta): string {
  const lines: string[] = [];
  const add = (k: string, v: string | number | undefined) => {
    if (v !== undefined && v !== '') lines.push(`${k} = ${v}`);
  };
  add('pkgname', m.name);
  add('pkgver', m.version);
  add('pkgdesc', m.description);
  add('url', m.url);
  add('builddate', m.buildDate);
  add('size', m.installedSize);
  add('arch', m.arch);
  add('origin', m.origin);
  add('commit', m.commit);
  add('maintainer', m.maintainer);
  add('license', m.license);
  add('provider_priority', m.providerPriority);
  add('replaces_priority', m.replacesPriority);
  for (const d of m.replaces) add('replaces', d);
  for (const d of m.depends) add('depend', d);
  for (const d of m.provides) add('provides', d);
  if (m.installIf.length) add('install_if', m.installIf.join(' '));
  if (m.triggers.length) add('triggers', m.triggers.join(' '));
  add('datahash', m.datahash);
  return lines.join('\n') + '\n';
}

/** Parses one index/installed record's package lines (letters C P V A S I T U L o m t c k D p i r q). */
export function recordFromLines(lines: ReadonlyArray<readonly [string, string]>, what: string): IndexRecord {
  const get = (l: string) => lines.find(([k]) => k === l)?.[1];
  const list = (l: string) => (get(l) ?? '').split(/\s+/).filter(Boolean);
  const num = (l: string) => {
    const v = get(l);
    return v === undefined ? undefined : count(v, `${l}: of ${get('P') ?? 'a record'}`, what);
  };
  const name = get('P');
  const version = get('V');
  if (!name || !version) throw new PsyError('apk-corrupt', `${what}: record without P: or V:`);
  return {
    checksum: get('C') ?? '',
    name,
    version,
    arch: get('A') ?? 'noarch',
    size: num('S') ?? 0,
    installedSize: num('I') ?? 0,
    description: get('T') ?? '',
    url: get('U') ?? '',
    license: get('L') ?? '',
    origin: get('o') ?? name,
    maintainer: get('m') ?? '',
    buildDate: num('t') ?? 0,
    commit: get('c') ?? '',
    providerPriority: num('k'),
    depends: list('D'),
    provides: list('p'),
    installIf: list('i'),
    replaces: list('r'),
    replacesPriority: num('q'),
    triggers: [],
    datahash: undefined,
  };
}

/**
 * The index header lines of a record in apk's order `C P V A S I T U L o m t c k D p i`;
 * `A o m t c k` omitted when empty or zero, as apk-tools writes them.
 */
export function recordLines(r: IndexRecord): string[] {
  const out: string[] = [];
  out.push(`C:${r.checksum}`, `P:${r.name}`, `V:${r.version}`);
  if (r.arch) out.push(`A:${r.arch}`);
  out.push(`S:${r.size}`, `I:${r.installedSize}`, `T:${r.description}`, `U:${r.url}`, `L:${r.license}`);
  if (r.origin) out.push(`o:${r.origin}`);
  if (r.maintainer) out.push(`m:${r.maintainer}`);
  if (r.buildDate) out.push(`t:${r.buildDate}`);
  if (r.commit) out.push(`c:${r.commit}`);
  if (r.providerPriority) out.push(`k:${r.providerPriority}`);
  if (r.depends.length) out.push(`D:${r.depends.join(' ')}`);
  if (r.provides.length) out.push(`p:${r.provides.join(' ')}`);
  if (r.installIf.length) out.push(`i:${r.installIf.join(' ')}`);
  return out;
}
