/**
 * The typed shape of build.config.ts. Types and one identity helper only: this module is
 * loaded (transpiled) together with the user's config, so it must stay free of imports
 * that cost start-up time.
 *
 * A config is a plain object; targets may be generated in code (loops, functions) and
 * given as nested arrays, which are flattened.
 */
import type {AnyRule, JsonValue, OptionalNames, RequiredNames, Rule, TargetParams, ToolSpec} from './rule.js';

/**
 * One source of input files. A bare string is a file path relative to the project root.
 * - `{files}`: explicit files (relative to the root); each must exist.
 * - `{glob}`: fast-glob patterns relative to the root; must match at least one file.
 * - `{target, output?}`: the outputs of another target (all of them, or the named one).
 */
export type InputSource =
  string | {readonly files: string | readonly string[]} | {readonly glob: string | readonly string[]} | {readonly target: string; readonly output?: string};

/** An input is one source or a list of them, concatenated in order. */
export type InputSpec = InputSource | readonly InputSource[];

/**
 * One output, relative to the output folder. A bare string is a file; `{dir}` is a
 * directory the step creates (its whole tree is the output).
 */
export type OutputSpec = string | {readonly file: string} | {readonly dir: string};

export interface TargetConfig {
  /** Letters, digits, `_`, `-`, `.`, `:` and `/`; starts with a letter or digit. */
  readonly name: string;
  /** One line shown by `psy targets` and in the status line. */
  readonly description?: string;
  /**
   * Named inputs. Names are identifiers ([A-Za-z_][A-Za-z0-9_]*) because shell commands
   * see them as environment variables `$in_<name>`.
   */
  readonly inputs?: Readonly<Record<string, InputSpec>>;
  /** Named parameter values, handed to the rule; they join the action key. */
  readonly params?: Readonly<Record<string, JsonValue>>;
  /** Named outputs (identifiers, like inputs) relative to the output folder. */
  readonly outputs: Readonly<Record<string, OutputSpec>>;
  /** How the outputs are made: a rule from rules/ ... */
  readonly rule?: AnyRule;
  /**
   * ... or a shell command run with `sh -c` in the project root. It sees its inputs and
   * outputs as environment variables: `$in` (all input paths, space separated),
   * `$in_<name>`, `$out` (all temporary output paths), `$out_<name>`, `$tmp` (scratch
   * folder), and `$SOURCE_DATE_EPOCH`. Paths are relative to the project root.
   */
  readonly command?: string;
  /** Pool name: `console` (the terminal alone) or one declared in `pools`. */
  readonly pool?: string;
  /** External programs a shell command runs (a rule declares its own in `rule.tools`). */
  readonly tools?: readonly ToolSpec[];
}

export type TargetList = ReadonlyArray<TargetConfig | TargetList>;

export interface PsyConfig {
  /** All targets; nested arrays are flattened. */
  readonly targets: TargetList;
  /** Target(s) `psy build` builds when none is named; default: every target. */
  readonly default?: string | readonly string[];
  /** Pools with their depth (how many steps may run at once in it). */
  readonly pools?: Readonly<Record<string, number>>;
  /** Folder for outputs, relative to the root. Default `cache/out`. */
  readonly outDir?: string;
  /** Folder for build state (log, lock). Default `cache/state`. */
  readonly stateDir?: string;
  /** Fixed timestamp handed to steps. Default 0 (1970-01-01). */
  readonly sourceDateEpoch?: number;
  /**
   * Free section for commands other than build (`alpine`, `deaddrop`, `signing`, ...).
   * The engine ignores it; each command reads and validates its own part.
   */
  readonly settings?: Readonly<Record<string, unknown>>;
}

/** Identity at run time; gives build.config.ts its types. */
export function defineConfig<C extends PsyConfig>(config: C): C {
  return config;
}

/** What a target gives a rule's declared inputs: each required one, optional ones or not. */
export type TargetInputs<I> = {readonly [N in RequiredNames<I>]: InputSpec} & {
  readonly [N in OptionalNames<I>]?: InputSpec;
};
/** Every declared output, a directory one as `{dir}`. */
export type TargetOutputs<O> = {
  readonly [N in keyof O]: O[N] extends 'dir' ? {readonly dir: string} : string | {readonly file: string};
};

/** A field that may be left out when the contract requires nothing in it. */
type Section<K extends string, T, Required> = [Required] extends [never] ? {readonly [F in K]?: T} : {readonly [F in K]: T};

/** A target of rule R, shaped by R's contract (a rule without one takes any names). */
export type RuleTarget<R> =
  R extends Rule<infer I, infer P, infer O>
    ? unknown extends O
      ? TargetConfig
      : Omit<TargetConfig, 'inputs' | 'params' | 'outputs' | 'rule' | 'command' | 'tools'> & {
          readonly rule: R;
        } & Section<'inputs', TargetInputs<I>, RequiredNames<I>> &
          Section<'params', TargetParams<P>, RequiredNames<P>> & {readonly outputs: TargetOutputs<O>}
    : never;

/**
 * Identity at run time; types one target. With a rule that declares its contract, tsc
 * checks the target against it: an unknown or missing input, param or output, or a
 * param of the wrong type, is a compile error.
 */
export function defineTarget<R extends AnyRule>(target: RuleTarget<NoInfer<R>> & {readonly rule: R}): TargetConfig;
export function defineTarget(target: TargetConfig & {readonly rule?: undefined}): TargetConfig;
export function defineTarget(target: TargetConfig): TargetConfig {
  return target;
}

export {defineRule, param} from './rule.js';
export type {InputKind, OutputKind, ParamKind, RuleContext, TypedRuleContext} from './rule.js';
export type {JsonValue, Rule, ToolSpec};
