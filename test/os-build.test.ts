import {spawnSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {mkdir, mkdtemp, readFile, readdir, rm, symlink, utimes, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {build, type BuildResult} from '../src/engine/build.js';
import {findPartition, listExt4, psyopsLabels, readExt4File} from '../src/disk/index.js';
import type {BuildEvent} from '../src/engine/events.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {parseTar} from '../src/image/tar.js';
import {fixtureSettings, lockProject, writeConfig, writeProject} from './os-project.js';

const artifacts: Array<[string, string]> = [
  ['initramfs', 'initramfs'],
  ['modloop', 'modloop'],
  ['squashfs', 'squashfs'],
  ['ostar', 'ostar'],
  ['esptar', 'esptar'],
  ['diskimg', 'image'],
];

async function sha256(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

interface Timed {
  result: BuildResult;
  seconds: number;
  steps: Record<string, number>;
}

async function timedBuild(dir: string, env?: NodeJS.ProcessEnv): Promise<Timed> {
  const steps: Record<string, number> = {};
  const logger = {event: (e: BuildEvent) => void (e.type === 'finish' && (steps[e.target] = e.durationMs / 1000))};
  const t0 = performance.now();
  const result = await build({cwd: dir, targets: ['diskimg'], jobs: 2, logger, ...(env ? {env} : {})});
  return {result, seconds: (performance.now() - t0) / 1000, steps};
}

function failure(t: Timed): string {
  expect(t.result.ok).toBe(false);
  const f = t.result.failed[0]!;
  expect(f.message).not.toContain('\n');
  return `${f.target}: ${f.message}`;
}

describe.skipIf(!haveAlpineTestData())('psyopsOS build: reproducible, incremental, clear errors', () => {
  let fx: FixtureRepository;
  let base: string;
  let one: string;
  let clean: Timed;
  beforeAll(async () => {
    fx = await buildFixtureRepository();
    base = await mkdtemp(join(tmpdir(), 'psy-os-build-'));
    one = join(base, 'one');
    await writeProject(one, fixtureSettings(one, fx));
    clean = await timedBuild(one);
    if (!clean.result.ok) throw new Error(JSON.stringify(clean.result.failed));
    const per = Object.entries(clean.steps)
      .map(([t, s]) => `${t} ${s.toFixed(1)}s`)
      .join(', ');
    console.log(`clean build: ${clean.seconds.toFixed(1)} s (${per})`);
  }, 900_000);
  afterAll(async () => {
    if (base) await rm(base, {recursive: true, force: true});
  });

  it('two clean builds in different folders at different times give identical artifacts', async () => {
    await new Promise((r) => setTimeout(r, 1500));
    const two = join(base, 'second-project-folder');
    await writeProject(two, fixtureSettings(two, fx));
    const again = await timedBuild(two);
    expect(again.result.ok).toBe(true);
    for (const [target, output] of artifacts) {
      const a = clean.result.outputs[target]![output]!;
      const b = again.result.outputs[target]![output]!;
      expect(a).not.toBe(b);
      expect(await sha256(b), `${target} differs`).toBe(await sha256(a));
    }
  }, 900_000);

  it('no-op and touch-only builds run nothing; a one-line patch edit re-runs only what depends on the init', async () => {
    const noop = await timedBuild(one);
    expect(noop.result.ran).toEqual([]);
    console.log(`no-op build: ${noop.seconds.toFixed(2)} s`);

    const now = Date.now() / 1000;
    const touchAll = async (d: string): Promise<void> => {
      for (const e of await readdir(d, {withFileTypes: true})) {
        const p = join(d, e.name);
        if (e.isDirectory()) await touchAll(p);
        await utimes(p, now, now);
      }
    };
    for (const d of ['alpine', 'test-overlay']) await touchAll(join(one, d));
    await utimes(join(one, 'build.config.ts'), now, now);
    await utimes(join(fx.archDir, 'APKINDEX.tar.gz'), now, now);
    const touched = await timedBuild(one);
    expect(touched.result.ran).toEqual([]);

    const patchPath = join(one, 'alpine/initramfs-init.patch');
    const patch = await readFile(patchPath, 'utf8');
    const edited = patch.replace('+# psyopsOS: psyopsos=<LABEL> names the A/B slot to boot.', '+# psyopsOS: psyopsos=<LABEL> names the slot to boot.');
    expect(edited).not.toBe(patch);
    await writeFile(patchPath, edited);
    const edit = await timedBuild(one);
    expect(edit.result.ok).toBe(true);
    expect([...edit.result.ran].sort()).toEqual(['diskimg', 'init', 'initramfs', 'ostar']);
    const per = Object.entries(edit.steps)
      .map(([t, s]) => `${t} ${s.toFixed(1)}s`)
      .join(', ');
    console.log(`init-patch edit: ${edit.seconds.toFixed(1)} s (${per}) = ${((100 * edit.seconds) / clean.seconds).toFixed(0)}% of the clean build`);
    await writeFile(patchPath, patch);
  }, 900_000);

  it('a patch that no longer applies fails with the rejected hunk', async () => {
    const patchPath = join(one, 'alpine/initramfs-init.patch');
    const patch = await readFile(patchPath, 'utf8');
    await writeFile(patchPath, patch.replace(' ln -s /proc/mounts "$ROOT"/etc/mtab', ' ln -s /proc/mounts "$ROOT"/etc/mtab-moved'));
    try {
      const msg = failure(await timedBuild(one));
      expect(msg).toMatch(/^init: alpine\/initramfs-init\.patch does not apply to the upstream initramfs-init; rejected hunk: @@ -\d+,6 \+\d+,28 @@/);
    } finally {
      await writeFile(patchPath, patch);
    }
  }, 300_000);

  it('a package missing from the repositories is named, and a lock that no longer matches the world is refused', async () => {
    const withMissing = fixtureSettings(one, fx, {world: [...fx.minirootfsWorld, 'no-such-package']});
    const err = (await lockProject(one, withMissing).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/no-such-package/);
    expect(err.message).not.toContain('\n');
    await writeConfig(one, withMissing);
    try {
      const msg = failure(await timedBuild(one));
      expect(msg).toMatch(/^(rootfs|kernel-root): the lock does not match settings\.alpine \(world adds no-such-package\): run psy lock$/);
    } finally {
      await writeConfig(one, fixtureSettings(one, fx));
    }
  }, 300_000);

  it('an OS larger than its slot is refused before the image is written', async () => {
    await writeConfig(one, fixtureSettings(one, fx, {partitions: {espMiB: 40, secretMiB: 8, slotMiB: 48}}));
    try {
      const msg = failure(await timedBuild(one));
      expect(msg).toMatch(/^diskimg: .*does not fit a 48 MiB slot; raise settings\.alpine\.partitions\.slotMiB/);
    } finally {
      await writeConfig(one, fixtureSettings(one, fx));
    }
  }, 300_000);

  it('a missing tool is named with its Debian package', async () => {
    // PATH with every usual program except mksquashfs.
    const bin = join(base, 'bin-without-mksquashfs');
    await mkdir(bin);
    for (const d of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
      for (const n of await readdir(d).catch(() => [] as string[])) {
        if (n === 'mksquashfs') continue;
        await symlink(join(d, n), join(bin, n)).catch(() => {});
      }
    }
    const base0 = fixtureSettings(one, fx);
    await writeConfig(one, {...base0, compression: {...base0.compression!, squashfsLevel: 5}});
    try {
      // The engine checks a step's tools before running it; it may report that as a
      // failed step or as a rejected build.
      const r = await timedBuild(one, {...process.env, PATH: bin}).catch((e: unknown) => e);
      const msg = r instanceof Error ? r.message : failure(r as Timed);
      expect(msg).not.toContain('\n');
      expect(msg).toMatch(/mksquashfs/);
      expect(msg).toMatch(/squashfs-tools/);
    } finally {
      await writeConfig(one, base0);
    }
  }, 300_000);

  it('psy mkinitpatch --edit writes the patched init; psy mkinitpatch turns edits back into the patch', async () => {
    const npmBuild = spawnSync('npm', ['run', 'build'], {cwd: repoRoot, encoding: 'utf8'});
    expect(npmBuild.status, npmBuild.stderr).toBe(0);
    const psy = (...args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'bin/psy.js'), ...args], {cwd: one, encoding: 'utf8'});
    const patchPath = join(one, 'alpine/initramfs-init.patch');
    const patch = await readFile(patchPath, 'utf8');
    const edited = join(one, 'alpine/initramfs-init.patched');
    try {
      const missing = psy('mkinitpatch');
      expect(missing.status).not.toBe(0);
      expect(missing.stderr.trim()).toMatch(/no edited init at alpine\/initramfs-init\.patched: run psy mkinitpatch --edit first$/);
      const e = psy('mkinitpatch', '--edit');
      expect(e.status, e.stderr).toBe(0);
      const text = await readFile(edited, 'utf8');
      expect(text).toContain('KOPT_psyopsos=');
      expect(psy('mkinitpatch', '--edit').status).not.toBe(0); // keeps unsaved edits
      const same = psy('mkinitpatch');
      expect(same.stdout).toContain('unchanged');
      await writeFile(edited, text.replace('\tKOPT_overlaytmpfs=yes\n', '\tKOPT_overlaytmpfs=yes\n\tKOPT_overlaytmpfsflags=size=90%\n'));
      const save = psy('mkinitpatch');
      expect(save.status, save.stderr).toBe(0);
      const now = await readFile(patchPath, 'utf8');
      expect(now).toContain('+\tKOPT_overlaytmpfsflags=size=90%');
      expect(now).toMatch(/@@ -\d+,6 \+\d+,29 @@/);
      const rebuilt = await timedBuild(one);
      expect([...rebuilt.result.ran].sort()).toEqual(['diskimg', 'init', 'initramfs', 'ostar']);
    } finally {
      await writeFile(patchPath, patch);
      await rm(edited, {force: true});
    }
  }, 600_000);

  it('naming a node builds its sectar into the psyops-secret partition', async () => {
    expect((await timedBuild(one)).result.ok).toBe(true); // settle what earlier tests left stale
    const secrets = join(one, 'secrets/testnode1');
    await mkdir(secrets, {recursive: true});
    await writeFile(join(secrets, 'mactab'), 'psy0 ac:ed:de:ad:be:ef\n');
    const withNode = fixtureSettings(one, fx, {node: {name: 'testnode1', secretsDir: 'secrets/testnode1'}});
    await writeConfig(one, withNode);
    try {
      const r = await timedBuild(one);
      expect(r.result.ok, JSON.stringify(r.result.failed)).toBe(true);
      expect([...r.result.ran].sort()).toEqual(['diskimg', 'sectar']);
      const image = r.result.outputs['diskimg']!['image']!;
      expect(image).toMatch(/psyopsOS\.x86_64-uefi\.testnode1\.img$/);
      const secret = await findPartition(image, psyopsLabels.secret);
      expect((await readExt4File(image, secret, '/nodename')).toString()).toBe('testnode1\n');
      expect((await readExt4File(image, secret, '/mactab')).toString()).toBe('psy0 ac:ed:de:ad:be:ef\n');
      const files = await listExt4(image, secret, '/');
      expect(files.find((f) => f.path === 'mactab')!.mode & 0o777).toBe(0o600);
    } finally {
      await writeConfig(one, fixtureSettings(one, fx));
    }
  }, 600_000);

  it('EFI extras go into the esptar with a manifest and a menu entry; the OS tarball is untouched', async () => {
    expect((await timedBuild(one)).result.ok).toBe(true); // settle what earlier tests left stale
    await mkdir(join(one, 'efi'), {recursive: true});
    await writeFile(join(one, 'efi/hello.efi'), Buffer.from('MZ-not-really-an-efi-program'));
    await writeConfig(one, fixtureSettings(one, fx, {efiExtras: {'efi/hello.efi': 'Hello EFI'}}));
    try {
      const r = await timedBuild(one);
      expect(r.result.ok, JSON.stringify(r.result.failed)).toBe(true);
      expect([...r.result.ran].sort()).toEqual(['diskimg', 'esptar']);
      const names: string[] = [];
      const files = new Map<string, string>();
      parseTar(await readFile(r.result.outputs['esptar']!['esptar']!), 'esptar', (m, d) => {
        names.push(m.path);
        files.set(m.path, d.toString());
      });
      expect(names).toContain('EFI/BOOT/BOOTX64.EFI');
      expect(names.some((n) => /^grub-[0-9a-f]+\/hello\.efi$/.test(n))).toBe(true);
      expect(JSON.parse(files.get('manifest.json')!)).toEqual({version: 1, extra_programs: {'hello.efi': 'Hello EFI'}});
      const cfg = [...files.entries()].find(([n]) => n.endsWith('/grub.cfg'))![1];
      expect(cfg).toContain("menuentry 'Hello EFI'");
    } finally {
      await writeConfig(one, fixtureSettings(one, fx));
    }
  }, 600_000);
});
