import fc from 'fast-check';
import {describe, expect, it} from 'vitest';
import {checkConfig, formatProblem} from '../src/engine/config-check.js';
import {isPsyError, PsyError} from '../src/errors.js';
import {analyze} from '../src/engine/graph.js';
import {loadedConfig} from './helpers/engine-rig.js';
import {fuzzParams, parsesOrRefuses} from './helpers/fuzz.js';

/** Any value a config module could export: JSON-like trees plus the JS values JSON lacks. */
const oddValue = fc.constantFrom<unknown>(1n, NaN, Infinity, -0, null, undefined, () => 1, Symbol('s'), new Date(0), new Map(), /re/, new Uint8Array(2));
const anyValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    {depthSize: 'small'},
    fc.string({maxLength: 12}),
    fc.integer(),
    fc.boolean(),
    oddValue,
    fc.array(tie('value'), {maxLength: 3}),
    fc.dictionary(
      fc.constantFrom('name', 'inputs', 'outputs', 'command', 'params', 'target', 'pool', 'tools', 'rule', 'inptus', '__proto__', 'x'),
      tie('value'),
      {maxKeys: 4},
    ),
  ),
})).value;

/** Well-formed targets, then one field of one target (or of the top level) replaced. */
const baseTargets = [
  {name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'},
  {name: 'b', inputs: {a: {target: 'a'}}, outputs: {o: 'b.txt'}, command: 'touch $out', params: {n: 1, s: 'x'}},
  {name: 'all', inputs: {a: {target: 'a'}, b: {target: 'b', output: 'o'}}},
];
const mutatedConfig = fc
  .record({
    target: fc.integer({min: -1, max: baseTargets.length - 1}),
    key: fc.constantFrom('name', 'inputs', 'outputs', 'command', 'params', 'description', 'pool', 'default', 'targets', 'defualt', 'sourceDateEpoch', 'comand'),
    value: anyValue,
  })
  .map(({target, key, value}) => {
    const targets: unknown[] = baseTargets.map((t) => ({...t}));
    const top: Record<string, unknown> = {targets, default: 'all'};
    if (target < 0) top[key] = value;
    else (targets[target] as Record<string, unknown>)[key] = value;
    return top as unknown;
  });

describe('fuzz: the config validator', () => {
  it('reports problems as one-line values and never throws; a config it passes analyses or is refused with a PsyError', () => {
    let clean = 0;
    let flagged = 0;
    fc.assert(
      fc.property(fc.oneof(mutatedConfig, anyValue), (config) => {
        let lines: string[] = [];
        expect(() => (lines = checkConfig(config).map(formatProblem))).not.toThrow();
        for (const l of lines) expect(l).not.toMatch(/[\r\n]/);
        if (lines.length > 0) flagged++;
        else clean++;
        // analysis re-checks the shape and refuses with a PsyError: a line per problem
        try {
          analyze(loadedConfig(config));
        } catch (err) {
          parsesOrRefuses(() => {
            if (!isPsyError(err)) throw err;
            const problems = err.message.split('\n');
            for (const line of problems) expect(line).toMatch(/^\S(?!.*\n)/);
            throw new PsyError(err.code, problems[0]!);
          });
        }
      }),
      fuzzParams(2000),
    );
    // both sides of the validator were reached
    expect(clean).toBeGreaterThan(0);
    expect(flagged).toBeGreaterThan(0);
  });
});
