/**
 * The contract between the engine and the rules in rules/. The engine knows nothing
 * about what a rule makes; a rule knows nothing about scheduling, staleness or state.
 *
 * A rule is a TypeScript function. It reads only what the engine hands it (resolved
 * input paths and parameters), writes only into the temporary output paths it is given,
 * and runs external programs only through `ctx.run` so that they are killed with the
 * build and their output lands in the step's buffered log. The engine moves the outputs
 * into place after the rule returns and records success only then.
 */

export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | {[key: string]: JsonValue};

/** An external program a rule runs. Its version string joins the action key. */
export interface ToolSpec {
  /** Executable name looked up on PATH (or an absolute path). */
  readonly command: string;
  /** Arguments that make it print its version, e.g. ['-version']. */
  readonly versionArgs: readonly string[];
  /** The Debian package that provides it, named in the "command not found" error. */
  readonly debianPackage?: string;
}

export interface RunOptions {
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Bytes written to the child's stdin. */
  readonly input?: string | Uint8Array;
  /** Return stdout as a Buffer instead of appending it to the step log. */
  readonly captureStdout?: boolean;
  /** Return stderr without appending it to the step log (shown only if the program fails): for tools that print banners and notices the caller reads itself. */
  readonly captureStderr?: boolean;
}

export interface RunResult {
  readonly stdout: Buffer;
  readonly stderr: Buffer;
}

export interface RuleContext {
  /** Target name, for messages. */
  readonly target: string;
  /** Absolute project root (the folder of the config file). */
  readonly root: string;
  /**
   * Resolved inputs by the name they were declared under: absolute paths of files,
   * glob matches (sorted) and upstream targets' outputs.
   */
  readonly inputs: Readonly<Record<string, readonly string[]>>;
  /** Declared parameter values. */
  readonly params: Readonly<Record<string, JsonValue>>;
  /**
   * Declared outputs by name → absolute temporary path the rule must create (a file,
   * or a directory for directory outputs). Moved into place by the engine afterwards.
   */
  readonly outputs: Readonly<Record<string, string>>;
  /** Scratch directory, empty at start, removed after the step. */
  readonly tmpDir: string;
  /** Fixed timestamp for reproducible outputs (SOURCE_DATE_EPOCH). */
  readonly sourceDateEpoch: number;
  /** Aborted on Ctrl-C/SIGTERM or when another step fails and the build stops. */
  readonly signal: AbortSignal;
  /** Append a line to the step's buffered output. */
  log(line: string): void;
  /**
   * Run an external program in its own process group; rejects with a PsyError naming
   * the command, its exit status and its output when it fails; killed on abort.
   */
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export interface Rule {
  /** Stable kebab-case name, e.g. 'squashfs'. */
  readonly name: string;
  /** Bump when behaviour changes in a way the code hash would not show. */
  readonly version: number;
  /** External programs this rule runs. */
  readonly tools?: readonly ToolSpec[];
  /** The rule's module URL (pass import.meta.url); its source joins the action key. */
  readonly module: string;
  run(ctx: RuleContext): Promise<void>;
}

export function defineRule(rule: Rule): Rule {
  return rule;
}
