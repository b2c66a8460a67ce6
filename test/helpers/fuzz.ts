import fc from 'fast-check';
import {isPsyError} from '../../src/errors.js';

/**
 * Shared settings for the parser fuzz tests: a fixed seed so CI runs the same inputs
 * every time (a failure prints its counterexample and path), and bounded runs so all
 * fuzz files together stay well under two minutes. One file per parser family
 * (test/fuzz-<family>.test.ts), the config validator's included (fuzz-config).
 */
export const FUZZ_SEED = 0x5ec_b_14;

export function fuzzParams(numRuns: number): fc.Parameters<unknown> {
  return {seed: FUZZ_SEED, numRuns, endOnFailure: true};
}

/** A refusal is a PsyError with a one-line message; anything else thrown is a crash (rethrown). */
function refusal(err: unknown): 'refused' {
  if (!isPsyError(err)) throw err;
  if (/[\r\n]/.test(err.message)) throw new Error(`PsyError message spans lines: ${JSON.stringify(err.message)}`);
  return 'refused';
}

/** Runs `parse`: 'parsed', or 'refused' for a one-line PsyError; anything else fails the property. */
export function parsesOrRefuses(parse: () => unknown): 'parsed' | 'refused' {
  try {
    parse();
    return 'parsed';
  } catch (err) {
    return refusal(err);
  }
}

export async function parsesOrRefusesAsync(parse: () => Promise<unknown>): Promise<'parsed' | 'refused'> {
  try {
    await parse();
    return 'parsed';
  } catch (err) {
    return refusal(err);
  }
}

/** Values that trip numeric parsing: signs, exponents, hex, huge, empty, NaN, non-ASCII. */
export const HOSTILE_NUMBERS = [
  '-1',
  '0',
  'root',
  '1e3',
  '0x10',
  '',
  ' ',
  'NaN',
  'Infinity',
  '99999999999999999999',
  '9007199254740993',
  '4294967295',
  '1.5',
  '-0',
  '077',
  '\u00ff',
  '1 2',
  '+1',
];

type Mutation =
  | {kind: 'set'; at: number; byte: number}
  | {kind: 'truncate'; at: number}
  | {kind: 'insert'; at: number; bytes: Uint8Array}
  | {kind: 'delete'; at: number; length: number}
  | {kind: 'overwrite'; at: number; text: string};

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {weight: 4, arbitrary: fc.record({kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({min: 0, max: 255})})},
  {weight: 1, arbitrary: fc.record({kind: fc.constant('truncate' as const), at: fc.nat()})},
  {weight: 1, arbitrary: fc.record({kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({minLength: 1, maxLength: 32})})},
  {weight: 1, arbitrary: fc.record({kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({min: 1, max: 600})})},
  {weight: 2, arbitrary: fc.record({kind: fc.constant('overwrite' as const), at: fc.nat(), text: fc.constantFrom(...HOSTILE_NUMBERS)})},
);

function apply(sample: Buffer, ms: readonly Mutation[]): Buffer {
  let b = Buffer.from(sample);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    switch (m.kind) {
      case 'set':
        if (b.length) b[at] = m.byte;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
        break;
      case 'overwrite':
        Buffer.from(m.text, 'latin1').copy(b, at);
        break;
    }
  }
  return b;
}

/** One of `samples` with 1–8 mutations (byte flips, cuts, inserts, deletes, hostile numbers). */
export function mutatedBytes(samples: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc.tuple(fc.integer({min: 0, max: samples.length - 1}), fc.array(mutation, {minLength: 1, maxLength: 8})).map(([i, ms]) => apply(samples[i]!, ms));
}

/** The same for text samples (mutated as latin1 bytes). */
export function mutatedText(samples: readonly string[]): fc.Arbitrary<string> {
  return mutatedBytes(samples.map((s) => Buffer.from(s, 'utf8'))).map((b) => b.toString('utf8'));
}

/** Recomputes the checksum of every block that looks like a tar header, so mutations reach the fields behind it. */
export function fixTarChecksums(b: Buffer): Buffer {
  for (let at = 0; at + 512 <= b.length; at += 512) {
    if (b.toString('latin1', at + 257, at + 262) !== 'ustar') continue;
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : b[at + i]!;
    b.write(sum.toString(8).padStart(6, '0') + '\0 ', at + 148, 'latin1');
  }
  return b;
}
