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
import {PsyError} from '../errors.js';

export type JsonValue = string | number | boolean | null | JsonValue[] | {[key: string]: JsonValue};

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

/**
 * What a rule reads and writes, declared next to its code so that targets are checked
 * against it: by tsc through `defineTarget`, and at load time by config-check.ts for
 * configs written in plain JavaScript.
 *
 * Inputs: `'file'` is exactly one path (a file, or a target's directory output),
 * `'files'` any number of them (a glob, a list); a trailing `?` makes the input optional
 * (absent: `undefined` for `'file?'`, an empty list for `'files?'`).
 */
export type InputKind = 'file' | 'file?' | 'files' | 'files?';
/** Outputs: a file, or a directory the rule creates (its whole tree is the output). */
export type OutputKind = 'file' | 'dir';
/** A parameter of a JSON type the contract names only by its TypeScript type: see `param`. */
export interface TypedParam<T, Optional extends boolean = boolean> {
  readonly kind: 'json';
  readonly optional: Optional;
  /** Type carrier only; never set. */
  readonly type?: () => T;
}
/** Parameters: a primitive checked at load time too (trailing `?`: optional), or `param<T>()`. */
export type ParamKind = 'string' | 'string?' | 'number' | 'number?' | 'boolean' | 'boolean?' | 'strings' | 'strings?' | TypedParam<unknown>;

export type InputContract = Readonly<Record<string, InputKind>>;
export type ParamContract = Readonly<Record<string, ParamKind>>;
export type OutputContract = Readonly<Record<string, OutputKind>>;

/** A JSON parameter of type T (checked as JSON at load time, as T by tsc). */
export function param<T>(): TypedParam<T, false> {
  return {kind: 'json', optional: false};
}
/** An optional JSON parameter of type T: `undefined` in the rule when the target omits it. */
param.optional = function optionalParam<T>(): TypedParam<T, true> {
  return {kind: 'json', optional: true};
};

type InputValue<K> = K extends 'file' ? string : K extends 'file?' ? string | undefined : readonly string[];
type ParamValue<K> = K extends 'string'
  ? string
  : K extends 'number'
    ? number
    : K extends 'boolean'
      ? boolean
      : K extends 'strings'
        ? readonly string[]
        : K extends `${infer B}?`
          ? ParamValue<B> | undefined
          : K extends TypedParam<infer T, infer O>
            ? O extends true
              ? T | undefined
              : T
            : never;

/** Names of the optional entries of a contract (`'file?'`, `'number?'`, `param.optional()`). */
export type OptionalNames<C> = {
  [N in keyof C]: C[N] extends `${string}?` ? N : C[N] extends TypedParam<unknown, true> ? N : never;
}[keyof C];
export type RequiredNames<C> = Exclude<keyof C, OptionalNames<C>>;

/** The inputs a rule sees: one path, possibly none, or a list, as declared. */
export type RuleInputs<I> = {readonly [N in keyof I]: InputValue<I[N]>};
export type RuleParams<P> = {readonly [N in keyof P]: ParamValue<P[N]>};
export type RuleOutputs<O> = {readonly [N in keyof O]: string};
/** What a target of the rule gives each parameter (the values the rule sees). */
export type TargetParams<P> = {readonly [N in RequiredNames<P>]: ParamValue<P[N]>} & {
  readonly [N in OptionalNames<P>]?: ParamValue<P[N]>;
};

/** The context a rule with a contract is run with: its inputs, params and outputs typed. */
export interface TypedRuleContext<I, P, O> extends Omit<RuleContext, 'inputs' | 'params' | 'outputs'> {
  readonly inputs: RuleInputs<I>;
  readonly params: RuleParams<P>;
  readonly outputs: RuleOutputs<O>;
}

/** The rule as the engine runs it. */
export interface Rule<I = unknown, P = unknown, O = unknown> {
  /** Stable kebab-case name, e.g. 'squashfs'. */
  readonly name: string;
  /** Bump when behaviour changes in a way the code hash would not show. */
  readonly version: number;
  /** External programs this rule runs. */
  readonly tools?: readonly ToolSpec[];
  /** The rule's module URL (pass import.meta.url); its source joins the action key. */
  readonly module: string;
  /** The declared contract (absent for a rule that declares none: it reads raw records). */
  readonly inputs?: I;
  readonly params?: P;
  readonly outputs?: O;
  run(ctx: RuleContext): Promise<void>;
}

/** A rule whose contract tsc knows; what `defineTarget` checks a target against. */
export type AnyRule = Rule<unknown, unknown, unknown>;

/** What `defineRule` takes: a rule whose outputs are declared and whose run is typed by its contract. */
export interface RuleDefinition<I extends InputContract, P extends ParamContract, O extends OutputContract> extends Omit<Rule<I, P, O>, 'outputs' | 'run'> {
  readonly outputs: O;
  run(ctx: TypedRuleContext<I, P, O>): Promise<void>;
}

/**
 * A rule with its contract: `ctx.inputs.patch` is the one path of a `'file'` input, and a
 * target of it (through `defineTarget`) must name exactly the declared inputs, params and
 * outputs. A rule without `outputs` keeps the untyped context (records by name).
 */
export function defineRule<
  const I extends InputContract = Record<never, InputKind>,
  const P extends ParamContract = Record<never, ParamKind>,
  const O extends OutputContract = Record<never, OutputKind>,
>(rule: RuleDefinition<I, P, O>): Rule<I, P, O>;
export function defineRule(rule: Omit<Rule, 'inputs' | 'params' | 'outputs'>): Rule;
export function defineRule(rule: Rule | RuleDefinition<InputContract, ParamContract, OutputContract>): Rule {
  if (rule.outputs === undefined) return rule as Rule;
  const def = rule as RuleDefinition<InputContract, ParamContract, OutputContract>;
  return {
    ...def,
    run: (ctx) => def.run(typedContext(def, ctx)),
  };
}

/**
 * The engine's records, shaped as the contract says. The config check has already
 * refused unknown and missing names; a `'file'` input that resolved to several paths (a
 * glob) is refused here, naming the target and the input.
 */
function typedContext(
  def: RuleDefinition<InputContract, ParamContract, OutputContract>,
  ctx: RuleContext,
): TypedRuleContext<InputContract, ParamContract, OutputContract> {
  const inputs: Record<string, string | readonly string[] | undefined> = {};
  for (const [name, kind] of Object.entries(def.inputs ?? {})) {
    const paths = ctx.inputs[name] ?? [];
    if (kind === 'file' || kind === 'file?') {
      if (paths.length > 1 || (kind === 'file' && paths.length === 0)) {
        throw contractError(ctx.target, `input "${name}" of rule "${def.name}" must be one path, got ${paths.length}`);
      }
      inputs[name] = paths[0];
    } else inputs[name] = paths;
  }
  return {...ctx, inputs, params: ctx.params, outputs: ctx.outputs} as unknown as TypedRuleContext<InputContract, ParamContract, OutputContract>;
}

function contractError(target: string, message: string): PsyError {
  return new PsyError('rule-contract', `target "${target}": ${message}`);
}
