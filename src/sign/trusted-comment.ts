import {PsyError, printable} from '../errors.js';

/**
 * Trusted comments carry update metadata as space-separated `key=value` pairs, signed
 * together with the signature. Parsing is strict: a node must never act on a comment it
 * only half understood, so every token needs a key and a value, and keys are unique.
 */
export type TrustedFields = Readonly<Record<string, string>>;

const KEY = /^[A-Za-z][A-Za-z0-9_.-]*$/;
// Values cannot hold spaces (the separator) or '=' (would be ambiguous); minisign also
// forbids newlines in the comment line.
const VALUE = /^[^\s=]+$/;

export function parseTrustedComment(text: string, source = 'trusted comment'): TrustedFields {
  const fields: Record<string, string> = {};
  if (text.length === 0) throw new PsyError('bad-trusted-comment', `${source}: empty trusted comment`);
  for (const token of text.split(' ')) {
    const eq = token.indexOf('=');
    if (eq <= 0) {
      throw new PsyError('bad-trusted-comment', `${source}: '${printable(token)}' is not a key=value pair`);
    }
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);
    if (!KEY.test(key)) throw new PsyError('bad-trusted-comment', `${source}: bad key '${printable(key)}'`);
    if (!VALUE.test(value)) {
      throw new PsyError('bad-trusted-comment', `${source}: bad value for '${printable(key)}': '${printable(value)}'`);
    }
    if (Object.hasOwn(fields, key)) {
      throw new PsyError('bad-trusted-comment', `${source}: duplicate key '${printable(key)}'`);
    }
    fields[key] = value;
  }
  return fields;
}

/** Formats fields in insertion order; throws on anything parseTrustedComment would reject. */
export function formatTrustedComment(fields: Readonly<Record<string, string | number>>): string {
  const parts: string[] = [];
  for (const [key, raw] of Object.entries(fields)) {
    const value = String(raw);
    if (!KEY.test(key)) throw new PsyError('bad-trusted-comment', `bad trusted comment key '${key}'`);
    if (!VALUE.test(value)) {
      throw new PsyError(
        'bad-trusted-comment',
        `bad trusted comment value for '${key}': '${value}' (no spaces, '=' or empty values)`,
      );
    }
    parts.push(`${key}=${value}`);
  }
  if (parts.length === 0) throw new PsyError('bad-trusted-comment', 'trusted comment has no fields');
  return parts.join(' ');
}
