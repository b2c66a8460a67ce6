import {PsyError, printable} from '../errors.js';
import {compareVersions} from './version.js';

/** The relation a dependency asks for. `checksum` is `><Q1…` (an exact package identity). */
export type VersionOp = 'any' | '=' | '<' | '>' | '<=' | '>=' | '~' | '<~' | '>~' | '><';

export interface Dependency {
  readonly name: string;
  readonly op: VersionOp;
  /** Version (or Q1 identity for `><`); '' for 'any'. */
  readonly version: string;
  /** `!name`: the name must not be installed (in the given version range). */
  readonly conflict: boolean;
  /** `@tag` repository pin (world only). */
  readonly tag: string | undefined;
}

const DEP_RE = /^(!?)([^\s@<>=~!]+)(?:@([A-Za-z0-9._-]+))?(?:(><|<=|>=|<~|>~|=~|~=|~|=|<|>)(\S+))?$/;

/** Parses `[!]name[@tag][op version]` as apk does. */
export function parseDependency(text: string, what = 'dependency'): Dependency {
  const m = DEP_RE.exec(text.trim());
  if (!m) throw new PsyError('apk-dependency', `${what}: cannot parse dependency '${printable(text)}'`);
  let op = (m[4] ?? 'any') as string;
  if (op === '=~' || op === '~=') op = '~';
  return {conflict: m[1] === '!', name: m[2]!, tag: m[3], op: op as VersionOp, version: m[5] ?? ''};
}

export function parseDependencies(text: string | readonly string[], what?: string): Dependency[] {
  const parts = typeof text === 'string' ? text.split(/\s+/) : text.flatMap((t) => t.split(/\s+/));
  return parts.filter(Boolean).map((p) => parseDependency(p, what));
}

export function formatDependency(d: Dependency): string {
  return `${d.conflict ? '!' : ''}${d.name}${d.tag ? `@${d.tag}` : ''}${d.op === 'any' ? '' : d.op + d.version}`;
}

/**
 * Whether a candidate (its version, and its Q1 identity for `><`) satisfies the version
 * part of a dependency, ignoring `conflict` (the caller inverts for conflicts).
 */
export function versionMatches(d: Dependency, version: string, checksum?: string): boolean {
  switch (d.op) {
    case 'any':
      return true;
    case '><':
      return checksum !== undefined && checksum === d.version;
    case '=':
      return compareVersions(version, d.version) === 0;
    case '<':
      return compareVersions(version, d.version) < 0;
    case '>':
      return compareVersions(version, d.version) > 0;
    case '<=':
      return compareVersions(version, d.version) <= 0;
    case '>=':
      return compareVersions(version, d.version) >= 0;
    case '~':
      return compareVersions(version, d.version, true) === 0;
    case '<~':
      return compareVersions(version, d.version, true) <= 0;
    case '>~':
      return compareVersions(version, d.version, true) >= 0;
    default: {
      const never: never = d.op;
      return never;
    }
  }
}

/** A provide entry `name` or `name=version`. */
export interface Provide {
  readonly name: string;
  readonly version: string | undefined;
}

export function parseProvide(text: string): Provide {
  const eq = text.indexOf('=');
  return eq < 0 ? {name: text, version: undefined} : {name: text.slice(0, eq), version: text.slice(eq + 1)};
}
