/**
 * An expected failure caused by the user's input or environment (bad config, missing
 * tool, bad signature, unreachable server...). The CLI prints `message` as one line with
 * no stack trace and exits non-zero; anything else that escapes is an internal error.
 *
 * `code` is a stable, kebab-case tag (`cycle`, `missing-input`, `bad-signature`, ...)
 * so tests and `--json` output can match on the kind of failure, not on wording.
 */
export class PsyError extends Error {
  override readonly name = 'PsyError';
  constructor(
    readonly code: string,
    message: string,
    options?: {cause?: unknown},
  ) {
    super(message, options);
  }
}

/**
 * Duck-typed on purpose: rules and config modules are transpiled and loaded apart from
 * the compiled CLI, so their PsyError is a different class object than this one.
 */
export function isPsyError(err: unknown): err is PsyError {
  return err instanceof Error && err.name === 'PsyError' && typeof (err as {code?: unknown}).code === 'string';
}

/**
 * Untrusted text for a message: control characters (a newline in a package's
 * field, a NUL in a tar name) are escaped, so an error stays one line.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}
