import {PsyError} from '../errors.js';

/**
 * Alpine version ordering, as apk-tools defines it:
 * `digits{.digits}{letter}{_suffix{digits}}…{~hash}{-rN}`.
 */

type TokenType = 'digit' | 'letter' | 'suffix' | 'suffix-no' | 'hash' | 'revision' | 'end' | 'invalid';

/** Rank of token types when the two versions disagree: a lower rank is "more version". */
const TYPE_RANK: Record<TokenType, number> = {
  digit: 1,
  letter: 2,
  suffix: 3,
  'suffix-no': 4,
  hash: 5,
  revision: 6,
  end: 7,
  invalid: 8,
};

const SUFFIXES = ['alpha', 'beta', 'pre', 'rc', '', 'cvs', 'svn', 'git', 'hg', 'p'] as const;
const NO_SUFFIX_RANK = SUFFIXES.indexOf('');

interface Token {
  readonly type: TokenType;
  readonly text: string;
  /** For digits: whether it is the first number (compared numerically even with leading 0). */
  readonly first?: boolean;
  readonly rank?: number;
}

function tokenize(v: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  // first number
  const first = /^[0-9]+/.exec(v);
  if (!first) return [{type: 'invalid', text: v}];
  out.push({type: 'digit', text: first[0], first: true});
  i = first[0].length;
  let stage: 'digits' | 'letter' | 'suffix' | 'hash' | 'revision' = 'digits';
  while (i < v.length) {
    const rest = v.slice(i);
    let m: RegExpExecArray | null;
    if (stage === 'digits' && (m = /^\.([0-9]+)/.exec(rest))) {
      out.push({type: 'digit', text: m[1]!});
      i += m[0].length;
    } else if (stage === 'digits' && (m = /^[a-z](?![a-z])/.exec(rest))) {
      out.push({type: 'letter', text: m[0]});
      i += 1;
      stage = 'letter';
    } else if ((stage === 'digits' || stage === 'letter' || stage === 'suffix') && (m = /^_([a-z]+)([0-9]*)/.exec(rest))) {
      const rank = SUFFIXES.indexOf(m[1] as (typeof SUFFIXES)[number]);
      if (rank < 0 || m[1] === '') return [...out, {type: 'invalid', text: rest}];
      out.push({type: 'suffix', text: m[1]!, rank});
      if (m[2]) out.push({type: 'suffix-no', text: m[2]});
      i += m[0].length;
      stage = 'suffix';
    } else if (stage !== 'hash' && stage !== 'revision' && (m = /^~([0-9a-f]+)(?=-r|$)/.exec(rest))) {
      out.push({type: 'hash', text: m[1]!});
      i += m[0].length;
      stage = 'hash';
    } else if (stage !== 'revision' && (m = /^-r([0-9]+)$/.exec(rest))) {
      out.push({type: 'revision', text: m[1]!});
      i += m[0].length;
      stage = 'revision';
    } else {
      return [...out, {type: 'invalid', text: rest}];
    }
  }
  out.push({type: 'end', text: ''});
  return out;
}

export function isValidVersion(v: string): boolean {
  return !tokenize(v).some((t) => t.type === 'invalid');
}

export function validateVersion(v: string, what: string): void {
  if (!isValidVersion(v)) throw new PsyError('apk-version', `${what}: invalid version '${v}'`);
}

function compareNumbers(a: string, b: string): number {
  const x = a.replace(/^0+(?=.)/, '');
  const y = b.replace(/^0+(?=.)/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Compares two versions: negative when a < b, 0 when equal, positive when a > b.
 * With `fuzzy`, a matches b when b's tokens are a prefix of a's (the `~` operator).
 */
export function compareVersions(a: string, b: string, fuzzy = false): number {
  const ta = tokenize(a);
  const tb = tokenize(b);
  const n = Math.max(ta.length, tb.length);
  for (let i = 0; i < n; i++) {
    const x = ta[i] ?? {type: 'end' as const, text: ''};
    const y = tb[i] ?? {type: 'end' as const, text: ''};
    if (x.type === 'invalid' || y.type === 'invalid') {
      // apk falls back to sorting the strings when a version does not parse
      return compareStrings(a, b);
    }
    if (fuzzy && y.type === 'end') return 0;
    if (x.type !== y.type) {
      if (x.type === 'suffix' && x.rank! < NO_SUFFIX_RANK) return -1;
      if (y.type === 'suffix' && y.rank! < NO_SUFFIX_RANK) return 1;
      return TYPE_RANK[x.type] < TYPE_RANK[y.type] ? 1 : -1;
    }
    if (x.type === 'end') return 0;
    let c = 0;
    switch (x.type) {
      case 'digit':
        // Gentoo's rule: a later number with a leading zero compares as a string.
        c = !x.first && (x.text.startsWith('0') || y.text.startsWith('0')) ? compareStrings(x.text, y.text) : compareNumbers(x.text, y.text);
        break;
      case 'suffix':
        c = x.rank! - y.rank!;
        break;
      case 'suffix-no':
      case 'revision':
        c = compareNumbers(x.text, y.text);
        break;
      case 'letter':
      case 'hash':
        c = compareStrings(x.text, y.text);
        break;
      default: {
        const never: never = x.type;
        void never;
      }
    }
    if (c !== 0) return c < 0 ? -1 : 1;
  }
  return 0;
}
