/** `s` as one POSIX shell word in single quotes (a quote inside becomes `'\''`). */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** `s` as one POSIX shell word, left bare when every character is one the shell takes literally. */
export function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : shellQuote(s);
}
