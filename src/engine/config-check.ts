/**
 * The shape of a loaded config, checked as a whole before analysis (wireit's analyzer
 * is the model): every problem is collected with where it is (target and field), so one
 * run shows them all, and a misspelt key gets a "did you mean". Only the shape is
 * checked here; what needs the whole graph (unknown dependencies, duplicate outputs,
 * cycles) is analysis' part (graph.ts), which reports through the same list.
 *
 * Exported for tests and fuzzing: `checkConfig` must return problems, never throw, for
 * any value at all.
 */
import {didYouMean} from '../wording.js';

export interface ConfigProblem {
  /** The target the problem is in (its name, or `targets[3]` when it has none). */
  readonly target?: string;
  /** Dotted path of the field inside the target (or the config), e.g. `inputs.src`. */
  readonly field: string;
  readonly message: string;
}

/** One line: `target "a": field "inptus": unknown key (did you mean "inputs"?)`. */
export function formatProblem(p: ConfigProblem): string {
  const parts: string[] = [];
  if (p.target !== undefined) parts.push(p.target.startsWith('targets[') ? p.target : `target "${p.target}"`);
  if (p.field !== '') parts.push(`field "${p.field}"`);
  return `${parts.join(': ')}${parts.length > 0 ? ': ' : ''}${p.message}`;
}

const CONFIG_KEYS = ['targets', 'default', 'pools', 'outDir', 'stateDir', 'sourceDateEpoch', 'settings'];
const TARGET_KEYS = ['name', 'description', 'inputs', 'params', 'outputs', 'rule', 'command', 'pool', 'tools'];
const TOOL_KEYS = ['command', 'versionArgs', 'debianPackage'];

type Report = (field: string, message: string) => void;

/** Every shape problem of a config value; empty when it is well formed. */
export function checkConfig(config: unknown): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  try {
    checkTop(config, problems);
  } catch (err) {
    // A getter or proxy in the config that throws is a problem of the config too.
    problems.push({field: '', message: `cannot be read: ${err instanceof Error ? err.message.split('\n')[0]! : String(err)}`});
  }
  return problems;
}

function checkTop(config: unknown, problems: ConfigProblem[]): void {
  const top: Report = (field, message) => problems.push({field, message});
  if (!isPlainObject(config)) {
    top('', 'the default export must be an object: defineConfig({targets: [...]})');
    return;
  }
  unknownKeys(config, CONFIG_KEYS, '', top);
  if (!('targets' in config)) top('targets', 'is missing (a list of targets)');
  else if (!Array.isArray(config.targets)) top('targets', `must be an array of targets, got ${kindOf(config.targets)}`);
  else {
    const seen = new Set<unknown>();
    let index = 0;
    const walk = (list: readonly unknown[]): void => {
      if (seen.has(list)) return;
      seen.add(list);
      for (const t of list) {
        if (Array.isArray(t)) walk(t);
        else checkTarget(t, index++, problems);
      }
    };
    walk(config.targets);
  }
  if (config.default !== undefined && !isStringOrStrings(config.default)) {
    top('default', `must be a target name or a list of them, got ${kindOf(config.default)}`);
  }
  if (config.pools !== undefined) {
    if (!isPlainObject(config.pools)) top('pools', `must be an object of pool depths, got ${kindOf(config.pools)}`);
    else {
      for (const [name, depth] of Object.entries(config.pools)) {
        if (typeof depth !== 'number' || !Number.isInteger(depth) || depth < 1) top(`pools.${name}`, `depth must be a positive integer, got ${show(depth)}`);
      }
    }
  }
  for (const key of ['outDir', 'stateDir'] as const) {
    const v = config[key];
    if (v !== undefined && (typeof v !== 'string' || v === '')) top(key, `must be a non-empty path, got ${kindOf(v)}`);
  }
  const sde = config.sourceDateEpoch;
  if (sde !== undefined && (typeof sde !== 'number' || !Number.isSafeInteger(sde) || sde < 0)) {
    top('sourceDateEpoch', `must be a whole number of seconds ≥ 0, got ${show(sde)}`);
  }
  if (config.settings !== undefined && !isPlainObject(config.settings)) top('settings', `must be an object, got ${kindOf(config.settings)}`);
}

function checkTarget(t: unknown, index: number, problems: ConfigProblem[]): void {
  if (!isPlainObject(t)) {
    problems.push({target: `targets[${index}]`, field: '', message: `is not a target object, got ${kindOf(t)}`});
    return;
  }
  const target = typeof t.name === 'string' && t.name !== '' ? t.name : `targets[${index}]`;
  const report: Report = (field, message) => problems.push({target, field, message});
  unknownKeys(t, TARGET_KEYS, '', report);
  if (typeof t.name !== 'string') report('name', t.name === undefined ? 'is missing' : `must be a string, got ${kindOf(t.name)}`);
  if (t.description !== undefined && typeof t.description !== 'string') report('description', `must be a string, got ${kindOf(t.description)}`);
  if (t.command !== undefined && (typeof t.command !== 'string' || t.command.trim() === '')) {
    report(
      'command',
      typeof t.command === 'string'
        ? 'must not be empty'
        : `must be a shell command string, got ${kindOf(t.command)}${Array.isArray(t.command) ? ' (join the words into one string)' : ''}`,
    );
  }
  if (t.rule !== undefined) {
    const r = t.rule;
    if (!isObject(r) || typeof r['run'] !== 'function' || typeof r['name'] !== 'string') {
      report('rule', 'must come from defineRule({name, version, module, run})');
    } else if (typeof r['version'] !== 'number' || typeof r['module'] !== 'string') {
      report('rule', `rule "${r['name']}" needs a numeric version and its module (import.meta.url)`);
    }
  }
  if (t.pool !== undefined && typeof t.pool !== 'string') report('pool', `must be a pool name, got ${kindOf(t.pool)}`);
  if (t.inputs !== undefined) {
    if (!isPlainObject(t.inputs)) report('inputs', `must be an object of named inputs, got ${kindOf(t.inputs)}`);
    else for (const [name, spec] of Object.entries(t.inputs)) checkInput(spec, `inputs.${name}`, report);
  }
  if (t.outputs === undefined) {
    if (t.rule !== undefined || t.command !== undefined) report('outputs', 'is missing');
  } else if (!isPlainObject(t.outputs)) {
    report('outputs', `must be an object of named outputs, got ${kindOf(t.outputs)}`);
  } else {
    for (const [name, spec] of Object.entries(t.outputs)) checkOutput(spec, `outputs.${name}`, report);
  }
  if (t.params !== undefined) {
    if (!isPlainObject(t.params)) report('params', `must be an object of JSON values, got ${kindOf(t.params)}`);
    else for (const [name, value] of Object.entries(t.params)) checkJson(value, `params.${name}`, report, new Set());
  }
  if (isObject(t.rule) && typeof t.rule['name'] === 'string' && isPlainObject(t.rule['outputs'])) checkContract(t, t.rule, report);
  if (t.tools !== undefined) {
    if (!Array.isArray(t.tools)) report('tools', `must be a list of {command, versionArgs}, got ${kindOf(t.tools)}`);
    else t.tools.forEach((tool, i) => checkTool(tool, `tools[${i}]`, report));
  }
}

const PRIMITIVE_PARAMS: Readonly<Record<string, (v: unknown) => boolean>> = {
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number',
  boolean: (v) => typeof v === 'boolean',
  strings: (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'),
};

/**
 * A target against its rule's declared contract (rule.ts), for configs tsc did not
 * check: every name it gives must be one the rule reads, every required one present, a
 * primitive param of its type, a directory output given as `{dir}`.
 */
function checkContract(t: Record<string, unknown>, rule: Record<string, unknown>, report: Report): void {
  const ruleName = `rule "${String(rule['name'])}"`;
  const sections = [
    ['inputs', rule['inputs'], 'input'],
    ['params', rule['params'], 'param'],
    ['outputs', rule['outputs'], 'output'],
  ] as const;
  for (const [section, declared, what] of sections) {
    const contract = isPlainObject(declared) ? declared : {};
    const given = t[section];
    if (given !== undefined && !isPlainObject(given)) continue;
    const values = given ?? {};
    const names = Object.keys(contract);
    for (const name of Object.keys(values)) {
      if (!(name in contract)) report(`${section}.${name}`, `${ruleName} has no ${what} "${name}"${didYouMean(name, names)}`);
    }
    for (const [name, kind] of Object.entries(contract)) {
      const optional = typeof kind === 'string' ? kind.endsWith('?') : isObject(kind) && kind['optional'] === true;
      const value = values[name];
      if (value === undefined) {
        if (!optional) report(`${section}.${name}`, `is missing (${ruleName} reads it)`);
        continue;
      }
      if (section === 'params' && typeof kind === 'string') {
        const base = kind.replace(/\?$/, '');
        const ok = PRIMITIVE_PARAMS[base];
        if (ok !== undefined && !ok(value))
          report(`${section}.${name}`, `must be ${base === 'strings' ? 'a list of strings' : `a ${base}`} (${ruleName}), got ${kindOf(value)}`);
      }
      if (section === 'outputs' && kind === 'dir' && !(isPlainObject(value) && 'dir' in value)) {
        report(`${section}.${name}`, `must be {dir: PATH}: ${ruleName} makes a directory there`);
      }
    }
  }
}

function checkInput(spec: unknown, field: string, report: Report): void {
  const sources = Array.isArray(spec) ? spec : [spec];
  sources.forEach((src, i) => {
    const at = Array.isArray(spec) ? `${field}[${i}]` : field;
    if (typeof src === 'string') {
      if (src === '') report(at, 'is an empty path');
      return;
    }
    if (!isPlainObject(src)) {
      report(at, `must be a path, {files}, {glob} or {target}, got ${kindOf(src)}`);
      return;
    }
    const kind = ['files', 'glob', 'target'].filter((k) => k in src);
    if (kind.length !== 1) {
      if (kind.length > 1) report(at, `has both ${kind.map((k) => `"${k}"`).join(' and ')}; keep one`);
      else {
        const first = Object.keys(src)[0];
        report(
          at,
          `must be a path, {files}, {glob} or {target}${first === undefined ? '' : `; unknown key "${first}"${didYouMean(first, ['files', 'glob', 'target'])}`}`,
        );
      }
      return;
    }
    const k = kind[0]!;
    unknownKeys(src, k === 'target' ? ['target', 'output'] : [k], at, report);
    if (k === 'target') {
      if (typeof src.target !== 'string') report(`${at}.target`, `must be a target name, got ${kindOf(src.target)}`);
      if (src.output !== undefined && typeof src.output !== 'string') report(`${at}.output`, `must be an output name, got ${kindOf(src.output)}`);
    } else if (!isStringOrStrings(src[k]) || (Array.isArray(src[k]) && (src[k] as unknown[]).length === 0)) {
      report(`${at}.${k}`, `must be a path or a non-empty list of paths, got ${kindOf(src[k])}`);
    }
  });
}

function checkOutput(spec: unknown, field: string, report: Report): void {
  if (typeof spec === 'string') {
    if (spec === '') report(field, 'is an empty path');
    return;
  }
  if (!isPlainObject(spec)) {
    report(field, `must be a path, {file} or {dir}, got ${kindOf(spec)}`);
    return;
  }
  const kind = ['file', 'dir'].filter((k) => k in spec);
  if (kind.length !== 1) {
    const first = Object.keys(spec)[0];
    report(
      field,
      kind.length > 1
        ? 'has both "file" and "dir"; keep one'
        : `must be a path, {file} or {dir}${first === undefined ? '' : `; unknown key "${first}"${didYouMean(first, ['file', 'dir'])}`}`,
    );
    return;
  }
  unknownKeys(spec, kind, field, report);
  const v = spec[kind[0]!];
  if (typeof v !== 'string' || v === '') report(`${field}.${kind[0]!}`, `must be a non-empty path, got ${kindOf(v)}`);
}

function checkTool(tool: unknown, field: string, report: Report): void {
  if (!isPlainObject(tool)) {
    report(field, `must be {command, versionArgs}, got ${kindOf(tool)}`);
    return;
  }
  unknownKeys(tool, TOOL_KEYS, field, report);
  if (typeof tool.command !== 'string' || tool.command === '') report(`${field}.command`, `must be a program name, got ${kindOf(tool.command)}`);
  if (tool.versionArgs === undefined) report(`${field}.versionArgs`, 'is missing (the arguments that make it print its version)');
  else if (!Array.isArray(tool.versionArgs) || !tool.versionArgs.every((a) => typeof a === 'string'))
    report(`${field}.versionArgs`, `must be a list of strings, got ${kindOf(tool.versionArgs)}`);
  if (tool.debianPackage !== undefined && typeof tool.debianPackage !== 'string')
    report(`${field}.debianPackage`, `must be a string, got ${kindOf(tool.debianPackage)}`);
}

/** Parameters join the action key as JSON: only values JSON keeps as they are. */
function checkJson(v: unknown, field: string, report: Report, seen: Set<object>): void {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(v)) report(field, `must be a JSON value; ${String(v)} is not one`);
      return;
    case 'object':
      break;
    default:
      report(field, `must be a JSON value, got ${kindOf(v)}`);
      return;
  }
  if (v === null) return;
  if (seen.has(v)) {
    report(field, 'must be a JSON value; it refers to itself');
    return;
  }
  seen.add(v);
  if (Array.isArray(v)) v.forEach((x, i) => checkJson(x, `${field}[${i}]`, report, seen));
  else if (!isPlainObject(v)) report(field, `must be a JSON value, got ${kindOf(v)}`);
  else for (const [k, x] of Object.entries(v)) checkJson(x, `${field}.${k}`, report, seen);
  seen.delete(v);
}

function unknownKeys(o: Record<string, unknown>, known: readonly string[], at: string, report: Report): void {
  for (const key of Object.keys(o)) {
    if (known.includes(key)) continue;
    report(at === '' ? key : `${at}.${key}`, `unknown key${didYouMean(key, known)}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** A `{...}` literal (or Object.create(null)), not an array, Map, Date or class instance. */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (!isObject(v) || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === null || proto === Object.prototype || Object.getPrototypeOf(proto) === null;
}

function isStringOrStrings(v: unknown): boolean {
  return typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'));
}

/** What a wrong value is, in words: `an array`, `a bigint (5n)`, `a function`. */
function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'bigint':
      return `a BigInt (${String(v)}n)`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    case 'object': {
      const ctor = (Object.getPrototypeOf(v) as {constructor?: {name?: unknown}} | null)?.constructor?.name;
      return typeof ctor === 'string' && ctor !== 'Object' && ctor !== '' ? `a ${ctor}` : 'an object';
    }
    case 'string':
      return `a string (${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)})`;
    default:
      return `a ${typeof v} (${String(v)})`;
  }
}

function show(v: unknown): string {
  return typeof v === 'number' ? String(v) : kindOf(v);
}
