import {execFileSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {describe, expect, it} from 'vitest';
import {formatGrubEnv, readGrubEnvTolerant} from '../src/boot/grubenv.js';
import {resolveBoot} from '../src/boot/resolve.js';

const env = (vars: Record<string, string>) => formatGrubEnv(vars);

describe('boot resolver (the static grub.cfg, step for step)', () => {
  it('boots the built-in default A when neither environment copy exists', () => {
    expect(resolveBoot({primary: undefined, mirror: undefined})).toMatchObject({chosen: 'A', boots: 'A', knownGoodFrom: 'built-in', trySpent: false});
  });

  it('takes the known-good slot from the primary block', () => {
    const r = resolveBoot({primary: env({psyopsos_default: 'psyopsOS-B'}), mirror: env({psyopsos_default: 'psyopsOS-A'})});
    expect(r).toMatchObject({chosen: 'B', knownGood: 'B', knownGoodFrom: 'primary'});
  });

  it('falls back to the mirror when the primary is damaged, and ignores its try', () => {
    const damaged = env({psyopsos_default: 'psyopsOS-B', psyopsos_try: 'psyopsOS-A'});
    damaged.fill(0, 0, 10);
    const r = resolveBoot({primary: damaged, mirror: env({psyopsos_default: 'psyopsOS-B'})});
    expect(r).toMatchObject({chosen: 'B', knownGoodFrom: 'mirror', tryRequested: undefined, trySpent: false});
    // an empty primary (what a cut grub-editenv leaves) is treated the same
    expect(resolveBoot({primary: Buffer.alloc(0), mirror: env({psyopsos_default: 'psyopsOS-B'})}).chosen).toBe('B');
  });

  it('a primary without a valid default also defers to the mirror and drops its try', () => {
    const r = resolveBoot({primary: env({psyopsos_default: 'psyopsOS-C', psyopsos_try: 'psyopsOS-A'}), mirror: env({psyopsos_default: 'psyopsOS-B'})});
    expect(r).toMatchObject({chosen: 'B', knownGoodFrom: 'mirror', trySpent: false});
  });

  it('tries the other slot once: the flag is spent in the block GRUB leaves behind', () => {
    const primary = env({psyopsos_default: 'psyopsOS-A', psyopsos_try: 'psyopsOS-B'});
    const first = resolveBoot({primary, mirror: undefined});
    expect(first).toMatchObject({chosen: 'B', boots: 'B', knownGood: 'A', tryRequested: 'B', trySpent: true});
    expect(readGrubEnvTolerant(first.primaryAfter!)?.get('psyopsos_try')).toBe('');
    expect(first.primaryAfter!.length).toBe(1024);
    // the new slot panicked and rebooted: the next boot is the known-good slot
    const second = resolveBoot({primary: first.primaryAfter, mirror: undefined});
    expect(second).toMatchObject({chosen: 'A', tryRequested: undefined, trySpent: false});
  });

  it('ignores a try of the default slot or of something that is not a slot', () => {
    expect(resolveBoot({primary: env({psyopsos_default: 'psyopsOS-A', psyopsos_try: 'psyopsOS-A'}), mirror: undefined})).toMatchObject({
      chosen: 'A',
      tryRequested: undefined,
    });
    expect(resolveBoot({primary: env({psyopsos_default: 'psyopsOS-A', psyopsos_try: 'x'}), mirror: undefined})).toMatchObject({
      chosen: 'A',
      tryRequested: undefined,
    });
  });

  it('a nearly full block still takes the spend (the value only shrinks)', () => {
    const full = env({psyopsos_default: 'psyopsOS-A', psyopsos_try: 'psyopsOS-B', pad: 'p'.repeat(800)});
    expect(resolveBoot({primary: full, mirror: undefined}).trySpent).toBe(true);
  });

  it("falls back to the other slot when the chosen one cannot be loaded (GRUB's fallback)", () => {
    const primary = env({psyopsos_default: 'psyopsOS-B'});
    expect(resolveBoot({primary, mirror: undefined}, (s) => s === 'A')).toMatchObject({chosen: 'B', boots: 'A'});
    expect(resolveBoot({primary, mirror: undefined}, () => false)).toMatchObject({chosen: 'B', boots: undefined});
  });

  it('reads blocks written by the real grub-editenv', () => {
    const dir = mkdtempSync(join(tmpdir(), 'boot-resolve-'));
    try {
      const f = join(dir, 'grubenv');
      execFileSync('grub-editenv', [f, 'create']);
      execFileSync('grub-editenv', [f, 'set', 'psyopsos_default=psyopsOS-B', 'psyopsos_try=psyopsOS-A']);
      const r = resolveBoot({primary: readFileSync(f), mirror: undefined});
      expect(r).toMatchObject({chosen: 'A', knownGood: 'B', trySpent: true});
    } finally {
      rmSync(dir, {recursive: true, force: true});
    }
  });
});
