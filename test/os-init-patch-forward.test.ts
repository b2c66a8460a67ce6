import {existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import initPatch from '../rules/init-patch.js';
import {runTool} from '../src/tools/run.js';
import {applyInitPatch, makeInitPatch} from '../src/image/init-patch.js';
import {alpineTestData, haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {runRule} from './helpers/rule-context.js';

/**
 * The init patch is applied forward only: an upstream init that already holds the patch,
 * in whole or in part, is refused with the hunk quoted, never silently reversed.
 */
let dir: string;
const cleanup: string[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-initpatch-fwd-'));
});
afterEach(() => {
  for (const d of [dir, ...cleanup.splice(0)]) rmSync(d, {recursive: true, force: true});
});

/** Applies `patch` to `orig`, returning the error (or undefined) and whether `out` was written. */
async function apply(orig: string, patch: string, name = 'alpine/initramfs-init.patch') {
  const out = join(dir, 'out');
  rmSync(out, {force: true});
  const err = (await applyInitPatch(orig, patch, out, dir, runTool, name).then(
    () => undefined,
    (e: unknown) => e,
  )) as (Error & {code?: string}) | undefined;
  return {err, out};
}

/** A small upstream init and a two-hunk patch made from it with diff, as psy mkinitpatch does. */
async function synthetic() {
  const lines = Array.from({length: 40}, (_, i) => `line ${i + 1}`);
  const orig = join(dir, 'initramfs-init');
  writeFileSync(orig, lines.join('\n') + '\n');
  const patched = [...lines.slice(0, 10), '# psyopsOS: first', ...lines.slice(10, 30), '# psyopsOS: second', 'echo psyopsos', ...lines.slice(30)];
  const full = join(dir, 'full');
  writeFileSync(full, patched.join('\n') + '\n');
  const onlyFirst = join(dir, 'only-first');
  writeFileSync(onlyFirst, [...lines.slice(0, 10), '# psyopsOS: first', ...lines.slice(10)].join('\n') + '\n');
  const onlySecond = join(dir, 'only-second');
  writeFileSync(onlySecond, [...lines.slice(0, 30), '# psyopsOS: second', 'echo psyopsos', ...lines.slice(30)].join('\n') + '\n');
  const patch = join(dir, 'initramfs-init.patch');
  writeFileSync(patch, await makeInitPatch(orig, full));
  return {orig, full, onlyFirst, onlySecond, patch};
}

describe('the init patch is applied with --forward', () => {
  it('applies to the upstream init as before', async () => {
    const s = await synthetic();
    const {err, out} = await apply(s.orig, s.patch);
    expect(err).toBeUndefined();
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(s.full, 'utf8'));
  });

  it('refuses an upstream init that already holds the whole patch, quoting the hunk, instead of reversing it', async () => {
    const s = await synthetic();
    const {err, out} = await apply(s.full, s.patch);
    expect(err?.code).toBe('patch-already-applied');
    expect(err?.message).toBe(
      'alpine/initramfs-init.patch is already applied, in whole or in part, to the upstream initramfs-init (refused, not reversed); applied hunk: @@ -8,6 +8,7 @@ | +# psyopsOS: first',
    );
    // nothing that looks like an init is left behind (before: the unpatched init, exit 0)
    expect(existsSync(out) && readFileSync(out, 'utf8') === readFileSync(s.orig, 'utf8')).toBe(false);
  });

  it.each([
    // patch renumbers a rejected hunk by where the hunks before it went
    ['the first hunk', 'onlyFirst', /; applied hunk: @@ -8,6 \+8,7 @@ \| \+# psyopsOS: first$/],
    ['the second hunk', 'onlySecond', /; applied hunk: @@ -29,6 \+30,8 @@ \| \+# psyopsOS: second \| \+echo psyopsos$/],
  ] as const)('refuses an upstream init that already holds %s', async (_what, which, hunk) => {
    const s = await synthetic();
    const {err} = await apply(s[which], s.patch);
    expect(err?.code).toBe('patch-already-applied');
    expect(err?.message).toMatch(
      /^alpine\/initramfs-init\.patch is already applied, in whole or in part, to the upstream initramfs-init \(refused, not reversed\); applied hunk: /,
    );
    expect(err?.message).toMatch(hunk);
    expect(err?.message).not.toContain('\n');
  });

  it('the init-patch rule refuses it too', async () => {
    const s = await synthetic();
    const err = (await runRule(initPatch, {root: dir, inputs: {orig: [s.full], patch: [s.patch]}, outputs: {init: 'file'}}).catch(
      (e: unknown) => e,
    )) as Error & {code?: string};
    expect(err.code).toBe('patch-already-applied');
    expect(err.message).toMatch(/^initramfs-init\.patch is already applied/);
  });
});

describe.skipIf(!haveAlpineTestData())("--forward with Alpine's real initramfs-init", () => {
  const orig = join(alpineTestData, 'mkinitfs-3.13.0/initramfs-init');
  const patch = join(repoRoot, 'alpine/initramfs-init.patch');

  it('an already patched upstream init is refused, never turned back into the unpatched one', async () => {
    const first = join(dir, 'patched');
    await applyInitPatch(orig, patch, first, dir);
    const {err, out} = await apply(first, patch);
    expect(err?.code).toBe('patch-already-applied');
    expect(err?.message).toMatch(/; applied hunk: @@ -\d+,6 \+\d+,\d+ @@ \| \+/);
    expect(err?.message).not.toContain('\n');
    expect(existsSync(out) && readFileSync(out, 'utf8') === readFileSync(orig, 'utf8')).toBe(false);
  });
});
