import {PsyError} from '../errors.js';

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

/** A piece of user text for a one-line message: control characters escaped. */
function quote(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it looks for
  return /[\x00-\x1f\x7f]/.test(text) ? JSON.stringify(text) : `'${text}'`;
}

function oneLine(text: string, source: string): void {
  if (/[\r\n]/.test(text)) {
    throw new PsyError('bad-trusted-comment', `${source}: a trusted comment is one line, this one holds a line break (${quote(text)})`);
  }
}

export function parseTrustedComment(text: string, source = 'trusted comment'): TrustedFields {
  const fields: Record<string, string> = {};
  if (text.length === 0) throw new PsyError('bad-trusted-comment', `${source}: empty trusted comment`);
  oneLine(text, source);
  for (const token of text.split(' ')) {
    const eq = token.indexOf('=');
    if (eq <= 0) {
      throw new PsyError('bad-trusted-comment', `${source}: ${quote(token)} is not a key=value pair`);
    }
    const key = token.slice(0, eq);
    const value = token.slice(eq + 1);
    if (!KEY.test(key)) throw new PsyError('bad-trusted-comment', `${source}: bad key ${quote(key)}`);
    if (!VALUE.test(value)) {
      throw new PsyError('bad-trusted-comment', `${source}: bad value for ${quote(key)}: ${quote(value)}`);
    }
    if (Object.hasOwn(fields, key)) {
      throw new PsyError('bad-trusted-comment', `${source}: duplicate key ${quote(key)}`);
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
    if (!KEY.test(key)) throw new PsyError('bad-trusted-comment', `bad trusted comment key ${quote(key)}`);
    if (!VALUE.test(value)) {
      throw new PsyError('bad-trusted-comment', `bad trusted comment value for ${quote(key)}: ${quote(value)} (no spaces, '=' or empty values)`);
    }
    parts.push(`${key}=${value}`);
  }
  if (parts.length === 0) throw new PsyError('bad-trusted-comment', 'trusted comment has no fields');
  return parts.join(' ');
}
