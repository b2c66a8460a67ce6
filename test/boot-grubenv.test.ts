import {execFileSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {
  GRUBENV_SIZE,
  GrubEnvFullError,
  emptyGrubEnvBlock,
  formatGrubEnv,
  parseGrubEnv,
  readGrubEnvTolerant,
  updateGrubEnvBlock,
  writeGrubEnvFile,
} from '../src/boot/grubenv.js';

const editenv = (...args: string[]) => execFileSync('grub-editenv', args, {encoding: 'utf8'});

describe('GRUB environment block', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'boot-grubenv-'));
  });
  afterEach(() => rmSync(dir, {recursive: true, force: true}));

  it('creates the same bytes as grub-editenv create', () => {
    editenv(join(dir, 'env'), 'create');
    expect(emptyGrubEnvBlock().equals(readFileSync(join(dir, 'env')))).toBe(true);
  });

  it('set, overwrite, escape and unset give the same bytes as grub-editenv', () => {
    const f = join(dir, 'env');
    editenv(f, 'create');
    let ours = emptyGrubEnvBlock();
    const steps: Array<Record<string, string | undefined>> = [
      {psyopsos_default: 'psyopsOS-A', psyopsos_try: ''},
      {odd: 'back\\slash', multi: 'line1\nline2'},
      {psyopsos_default: 'psyopsOS-B'},
      {odd: undefined},
      {psyopsos_try: 'psyopsOS-A', added: 'x'},
    ];
    for (const step of steps) {
      const sets = Object.entries(step)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`);
      const unsets = Object.entries(step)
        .filter(([, v]) => v === undefined)
        .map(([k]) => k);
      if (sets.length) editenv(f, 'set', ...sets);
      if (unsets.length) editenv(f, 'unset', ...unsets);
      ours = updateGrubEnvBlock(ours, step);
      expect(ours.toString('latin1')).toBe(readFileSync(f).toString('latin1'));
    }
  });

  it('reads what grub-editenv writes and grub-editenv lists what we write', () => {
    const f = join(dir, 'env');
    editenv(f, 'create');
    editenv(f, 'set', 'a=1', 'b=with\\back', 'c=two\nlines', 'd=');
    const parsed = parseGrubEnv(readFileSync(f));
    expect(parsed.kind).toBe('valid');
    if (parsed.kind !== 'valid') return;
    expect([...parsed.vars]).toEqual([
      ['a', '1'],
      ['b', 'with\\back'],
      ['c', 'two\nlines'],
      ['d', ''],
    ]);

    const g = join(dir, 'ours');
    writeGrubEnvFile(g, formatGrubEnv({psyopsos_default: 'psyopsOS-B', psyopsos_hwm: '20250101-000000', e: 'x\\y'}));
    expect(readFileSync(g).length).toBe(GRUBENV_SIZE);
    expect(editenv(g, 'list')).toBe('psyopsos_default=psyopsOS-B\npsyopsos_hwm=20250101-000000\ne=x\\y\n');
  });

  it('writes in place without truncating: a larger file keeps its size and tail', () => {
    const g = join(dir, 'env');
    writeFileSync(g, Buffer.alloc(GRUBENV_SIZE, 0x41));
    writeGrubEnvFile(g, formatGrubEnv({k: 'v'}));
    const back = readFileSync(g);
    expect(back.length).toBe(GRUBENV_SIZE);
    expect(readGrubEnvTolerant(back)?.get('k')).toBe('v');
  });

  it('treats missing, empty, zeroed, short, unsigned or cut-off blocks as absent', () => {
    const good = formatGrubEnv({psyopsos_default: 'psyopsOS-B'});
    expect(readGrubEnvTolerant(good)?.get('psyopsos_default')).toBe('psyopsOS-B');
    expect(readGrubEnvTolerant(undefined)).toBeUndefined();
    expect(readGrubEnvTolerant(Buffer.alloc(0))).toBeUndefined();
    expect(readGrubEnvTolerant(Buffer.alloc(GRUBENV_SIZE))).toBeUndefined();
    expect(readGrubEnvTolerant(good.subarray(0, 512))).toBeUndefined();
    const unsigned = Buffer.from(good);
    unsigned[0] = 0x20;
    expect(readGrubEnvTolerant(unsigned)).toBeUndefined();
    // an entry running into the end of the block without a newline
    const cut = Buffer.alloc(GRUBENV_SIZE, 0x61);
    Buffer.from('# GRUB Environment Block\nk=v\nlong=').copy(cut);
    expect(readGrubEnvTolerant(cut)).toBeUndefined();
    const parsed = parseGrubEnv(cut);
    expect(parsed.kind).toBe('truncated');
    // GRUB keeps the entries before the broken one; so does the exact parser
    if (parsed.kind === 'truncated') expect(parsed.vars.get('k')).toBe('v');
    // and grub-editenv agrees that the unsigned one is invalid
    const f = join(dir, 'bad');
    writeFileSync(f, unsigned);
    expect(() => execFileSync('grub-editenv', [f, 'list'], {stdio: 'pipe'})).toThrow(/invalid environment block/);
  });

  it('refuses to overflow the block, as grub-editenv does', () => {
    expect(() => updateGrubEnvBlock(emptyGrubEnvBlock(), {big: 'x'.repeat(2000)})).toThrow(GrubEnvFullError);
    const f = join(dir, 'env');
    editenv(f, 'create');
    expect(() => execFileSync('grub-editenv', [f, 'set', `big=${'x'.repeat(2000)}`], {stdio: 'pipe'})).toThrow();
  });
});
