import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {applyInitPatch, makeInitPatch} from '../src/image/init-patch.js';
import {runTool} from '../src/tools/run.js';
import {alpineTestData, haveAlpineTestData, repoRoot} from './helpers/shared-data.js';

const orig = join(alpineTestData, 'mkinitfs-3.13.0/initramfs-init');
const patch = join(repoRoot, 'alpine/initramfs-init.patch');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'psy-initpatch-'));
});
afterEach(async () => {
  await rm(dir, {recursive: true, force: true});
});

describe.skipIf(!haveAlpineTestData())("the init patch against Alpine's real initramfs-init", () => {
  it('applies, stays small, parses as shell, and handles psyopsos= next to console=', async () => {
    const out = join(dir, 'init');
    await applyInitPatch(orig, patch, out, dir);
    const text = await readFile(out, 'utf8');
    expect(text).toContain('psyopsos=*)');
    expect(text).toContain('KOPT_root=$psyram/squashfs');
    expect(text).toContain('mount -t squashfs -o loop,ro $psyram/modloop /.modloop');
    const p = await readFile(patch, 'utf8');
    const added = p.split('\n').filter((l) => l.startsWith('+') && !l.startsWith('+++')).length;
    const removed = p.split('\n').filter((l) => l.startsWith('-') && !l.startsWith('---')).length;
    expect(removed).toBe(0);
    expect(added).toBeLessThanOrEqual(30);
    await runTool('busybox', ['sh', '-n', out]);
  });

  it('regenerates byte-for-byte the patch it was applied from (the two-way workflow)', async () => {
    const out = join(dir, 'init');
    await applyInitPatch(orig, patch, out, dir);
    expect(await makeInitPatch(orig, out)).toBe(await readFile(patch, 'utf8'));
    await writeFile(out, (await readFile(out, 'utf8')).replace('KOPT_overlaytmpfs=yes', 'KOPT_overlaytmpfs=yes\n\t: edited'));
    expect(await makeInitPatch(orig, out)).toContain('+\t: edited');
    expect(await makeInitPatch(orig, orig)).toBe('');
  });

  it('a patch that no longer applies fails with the rejected hunk on one line', async () => {
    const drifted = join(dir, 'initramfs-init');
    await writeFile(drifted, (await readFile(orig, 'utf8')).replace('ln -s /proc/mounts "$ROOT"/etc/mtab', 'ln -sf /proc/mounts "$ROOT"/etc/mtab'));
    const err = (await applyInitPatch(drifted, patch, join(dir, 'out'), dir, runTool, 'alpine/initramfs-init.patch').catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'patch-rejected'});
    expect(err.message).toMatch(
      /^alpine\/initramfs-init\.patch does not apply to the upstream initramfs-init; rejected hunk: @@ -\d+,6 \+\d+,28 @@ \| \+# psyopsOS:/,
    );
    expect(err.message).not.toContain('\n');
  });
});
