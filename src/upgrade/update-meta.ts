import {PsyError} from '../errors.js';
import {parseSignature} from '../sign/signature.js';
import {parseTrustedComment, type TrustedFields} from '../sign/trusted-comment.js';

/** What an update is for: an OS slot (ostar) or the ESP (esptar). */
export type UpdateKind = 'os' | 'esp';

export interface UpdateTarget {
  readonly kind: UpdateKind;
  /** x86_64 / aarch64 for the OS, the platform (x86_64-uefi) for the ESP. */
  readonly arch: string;
}

/** The verified metadata of one update, from its signature's trusted comment. */
export interface UpdateMeta {
  readonly kind: UpdateKind;
  readonly type: string;
  readonly filename: string;
  readonly version: string;
  readonly size: number | undefined;
  readonly fields: TrustedFields;
}

export const MAX_SIGNATURE_BYTES = 16 * 1024;

export function typeFor(kind: UpdateKind): string {
  return kind === 'os' ? 'psyopsOS' : 'psyopsESP';
}

/** `psyopsOS.x86_64.<version>.tar` / `psyopsESP.x86_64-uefi.<version>.tar`. */
export function updateFilename(t: UpdateTarget, version: string): string {
  return `${typeFor(t.kind)}.${t.arch}.${version}.tar`;
}

/**
 * Orders versions: digit runs compare as numbers, everything else as text, so both
 * `20250421-093000` timestamps and `1.10.2` sort as people expect.
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) {
      const d = BigInt(x) - BigInt(y);
      if (d !== 0n) return d < 0n ? -1 : 1;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Bare words the original psyopsOS's earliest comments began with, in place of `type=`. */
const BARE_TYPES = new Set(['psyopsOS', 'psyopsESP', 'psyopsOSBoot']);

/**
 * An update's trusted comment: `key=value` pairs (parsed strictly), where the earliest
 * signatures of the original psyopsOS begin with a bare `psyopsOS` word instead of
 * `type=psyopsOS` (`psyopsOS filename=... version=...`); that word is read as the type.
 */
export function parseUpdateComment(text: string, source: string): TrustedFields {
  const first = text.split(' ', 1)[0]!;
  if (!BARE_TYPES.has(first)) return parseTrustedComment(text, source);
  const rest = text.slice(first.length + 1);
  const fields = rest.trim() === '' ? {} : parseTrustedComment(rest, source);
  if (fields['type'] !== undefined) throw new PsyError('bad-trusted-comment', `${source}: both a bare '${first}' and type=${fields['type']}`);
  return {type: first, ...fields};
}

/** Unverified trusted comment fields, for `show` of records already on disk. */
export function peekTrustedFields(signatureText: string, source: string): TrustedFields | undefined {
  try {
    return parseUpdateComment(parseSignature(signatureText, source).trustedComment, source);
  } catch {
    return undefined;
  }
}

export interface MetaRules {
  readonly target: UpdateTarget;
  /** An explicit version asked for (not `latest`): the comment must say exactly this. */
  readonly version?: string;
  /** Refuse versions not above this (the anti-rollback floor) unless allowDowngrade. */
  readonly floor?: string;
  readonly allowDowngrade?: boolean;
  /** Where the signature came from, for messages. */
  readonly source: string;
}

/**
 * Checks an authenticated trusted comment against what this node needs: the type,
 * the architecture or platform, a filename that matches type/arch/version, a version
 * above the high-water mark, and the size when it says one (the original psyopsOS's
 * signatures do not: their download is capped by what it is for instead).
 */
export function checkMeta(fields: TrustedFields, rules: MetaRules): UpdateMeta {
  const {target, source} = rules;
  const want = typeFor(target.kind);
  const refuse = (code: string, msg: string): never => {
    throw new PsyError(code, `${source}: ${msg}`);
  };
  if (fields['type'] !== want) refuse('wrong-type', `type is ${fields['type'] ?? '(none)'}, expected ${want}`);
  const version = fields['version'] ?? refuse('bad-metadata', 'trusted comment has no version');
  const filename = fields['filename'] ?? refuse('bad-metadata', 'trusted comment has no filename');
  if (target.kind === 'os') {
    // signatures of the original psyopsOS before March 2024 have no architecture=; their
    // filename (checked below) names it
    const arch = fields['architecture'];
    if (arch !== undefined && arch !== target.arch) refuse('wrong-architecture', `architecture is ${arch}, this node is ${target.arch}`);
  } else {
    const plat = fields['platform'] ?? fields['architecture'];
    if (plat !== undefined && plat !== target.arch && !target.arch.startsWith(plat + '-')) {
      refuse('wrong-architecture', `platform is ${plat}, this node is ${target.arch}`);
    }
  }
  const expected = updateFilename(target, version);
  if (filename !== expected) refuse('bad-metadata', `filename ${filename} does not match type, architecture and version (expected ${expected})`);
  if (rules.version !== undefined && rules.version !== version) refuse('wrong-version', `version is ${version}, asked for ${rules.version}`);
  if (rules.floor !== undefined && !rules.allowDowngrade && compareVersions(version, rules.floor) <= 0) {
    refuse('downgrade', `version ${version} is not above the installed high-water mark ${rules.floor} (use --allow-downgrade to install it anyway)`);
  }
  let size: number | undefined;
  if (fields['size'] !== undefined) {
    if (!/^\d+$/.test(fields['size'])) refuse('bad-metadata', `size=${fields['size']} is not a byte count`);
    size = Number(fields['size']);
  }
  return {kind: target.kind, type: want, filename, version, size, fields};
}
