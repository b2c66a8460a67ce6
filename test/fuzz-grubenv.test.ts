import fc from 'fast-check';
import {describe, expect, it} from 'vitest';
import {emptyGrubEnvBlock, formatGrubEnv, GRUBENV_SIZE, parseGrubEnv, readGrubEnvTolerant, updateGrubEnvBlock} from '../src/boot/grubenv.js';
import {fuzzParams, mutatedBytes, parsesOrRefuses} from './helpers/fuzz.js';

const samples = [
  emptyGrubEnvBlock(),
  formatGrubEnv({default: 'psyopsOS-A', psyopsos_try: 'psyopsOS-B', escaped: 'a\\b\nc'}),
  formatGrubEnv({k: 'x'.repeat(900)}),
];

describe('fuzz: grubenv blocks', () => {
  it('are read without throwing, and updated or refused with a PsyError', () => {
    const changes = fc.dictionary(
      fc.oneof(fc.constantFrom('default', 'psyopsos_try', 'a=b', '', '#x', 'n\nl'), fc.string({maxLength: 8})),
      fc.option(fc.string({maxLength: 300}), {nil: undefined}),
      {maxKeys: 3},
    );
    fc.assert(
      fc.property(
        fc.oneof(
          mutatedBytes(samples),
          fc.uint8Array({maxLength: 1100}).map((u) => Buffer.from(u)),
        ),
        changes,
        (block, change) => {
          const parsed = parseGrubEnv(block);
          expect(['valid', 'truncated', 'invalid']).toContain(parsed.kind);
          const vars = readGrubEnvTolerant(block);
          if (vars !== undefined) expect(block.length).toBe(GRUBENV_SIZE);
          const verdict = parsesOrRefuses(() => updateGrubEnvBlock(block, change));
          if (verdict === 'parsed') expect(updateGrubEnvBlock(block, change).length).toBe(block.length);
        },
      ),
      fuzzParams(3000),
    );
  });
});
