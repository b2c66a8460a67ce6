import {copyFile, lstat, mkdir, readFile, readdir, readlink, symlink, writeFile, chmod} from 'node:fs/promises';
import {dirname, join, posix} from 'node:path';
import {gunzipSync} from 'node:zlib';
import {readdirInRoot, resolveInRoot} from '../apk/root-path.js';
import {PsyError} from '../errors.js';
import {runTool, type ToolRunner} from '../tools/run.js';
import {compress, cpioArchive, cpioEntriesFromDir, type Compression, type CpioEntry} from './cpio.js';
import {elfClosure} from './elf.js';
import {featureFiles, featureGlobs, matchModuleGlobs, moduleClosure, readModuleTree} from './kmod.js';

/**
 * The initramfs as mkinitfs would make it, rootless and reproducible: the init script,
 * the files the mkinitfs features list (busybox, modprobe, nlplug-findfs, ...) with
 * their shared-library closure, the features' kernel modules with their dependency
 * closure (re-indexed with depmod), and /dev nodes written straight into the cpio.
 */

export interface InitramfsSpec {
  /** Installed root the initramfs files are taken from. */
  readonly root: string;
  /** The init script (becomes /init). */
  readonly init: string;
  /** /lib/modules/<version> of the kernel, with modules.dep. */
  readonly modulesDir: string;
  readonly kernelVersion: string;
  /** mkinitfs features.d folder, inside `root` (e.g. /etc/mkinitfs/features.d). */
  readonly featuresDir: string;
  readonly features: readonly string[];
  /** Further module names to include (with their dependencies). */
  readonly extraModules?: readonly string[];
  readonly compression: Compression;
  readonly epoch: number;
  /**
   * Files that must be present. Others named by the feature lists are taken when the
   * installed root has them (as mkinitfs does), e.g. /etc/mdev.conf.
   */
  readonly requiredFiles?: readonly string[];
}

export interface InitramfsResult {
  readonly modules: readonly string[];
  readonly files: readonly string[];
}

const baseDirs = ['bin', 'dev', 'etc', 'lib', 'media', 'mnt', 'proc', 'run', 'sbin', 'sys', 'tmp', 'usr', 'usr/bin', 'usr/sbin'];

const devNodes: CpioEntry[] = [
  {type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1},
  {type: 'char', path: 'dev/null', mode: 0o666, major: 1, minor: 3},
  {type: 'char', path: 'dev/kmsg', mode: 0o660, major: 1, minor: 11},
];

function isGlob(p: string): boolean {
  return /[*?[]/.test(p);
}

/** Expand one absolute file-list pattern inside root (only the last component may glob). */
async function expandInRoot(root: string, pattern: string): Promise<string[]> {
  if (!isGlob(pattern)) return [pattern];
  const dir = posix.dirname(pattern);
  const re = new RegExp(
    '^' +
      posix
        .basename(pattern)
        .replace(/[.+^${}()|\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.') +
      '$',
  );
  const names = (await readdirInRoot(root, dir, 'initramfs'))?.entries.map((e) => e.name) ?? [];
  return names
    .filter((n) => re.test(n))
    .sort()
    .map((n) => posix.join(dir, n));
}

/** Copies `path` (real: no symlinked folder on the way, see elfClosure) from the root into the stage. */
async function copyIntoStage(root: string, stage: string, path: string): Promise<void> {
  const src = join(root, path);
  const dst = join(stage, path);
  const st = await lstat(src);
  await mkdir(dirname(dst), {recursive: true});
  if (await lstat(dst).catch(() => undefined)) return;
  if (st.isSymbolicLink()) await symlink(await readlink(src), dst);
  else if (st.isDirectory()) await mkdir(dst, {recursive: true});
  else if (st.isFile()) {
    await copyFile(src, dst);
    await chmod(dst, st.mode & 0o7777);
  } else throw new PsyError('not-a-file', `initramfs: ${path} in the installed root is not a regular file, folder or symlink`);
}

async function decompressModule(src: string): Promise<Buffer> {
  const data = await readFile(src);
  if (src.endsWith('.ko')) return data;
  if (src.endsWith('.gz')) return gunzipSync(data);
  const tool = src.endsWith('.xz') ? ['xz', '-dc'] : ['zstd', '-dc'];
  return (await runTool(tool[0]!, tool.slice(1), {input: data, captureStdout: true})).stdout;
}

export async function buildInitramfs(spec: InitramfsSpec, out: string, scratch: string, run: ToolRunner = runTool): Promise<InitramfsResult> {
  const stage = join(scratch, 'initramfs');
  for (const d of baseDirs) await mkdir(join(stage, d), {recursive: true});

  // Files named by the features (base.files: busybox, modprobe, nlplug-findfs, ...),
  // every path resolved inside the root: a folder is walked at its real location.
  const wanted: string[] = [];
  const dirs: string[] = [];
  const dirLinks: string[] = [];
  const walk = async (real: string): Promise<void> => {
    dirs.push(real);
    for (const e of (await readdir(join(spec.root, real), {withFileTypes: true})).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = posix.join(real, e.name);
      if (e.isDirectory()) await walk(r);
      else wanted.push(r);
    }
  };
  for (const pattern of await featureFiles(spec.root, spec.featuresDir, spec.features)) {
    for (const p of await expandInRoot(spec.root, pattern)) {
      const r = await resolveInRoot(spec.root, p, 'initramfs');
      if (r === undefined) continue;
      if (r.stat.isDirectory()) {
        dirLinks.push(...r.links);
        await walk(r.path);
      } else wanted.push(p);
    }
  }
  for (const r of spec.requiredFiles ?? ['/bin/busybox']) {
    if ((await resolveInRoot(spec.root, r, 'initramfs')) === undefined) {
      throw new PsyError('missing-file', `initramfs: ${r} is not in the installed root (is the package that provides it in the world?)`);
    }
    if (!wanted.includes(r)) wanted.push(r);
  }
  // The closure also holds the symlinks on the way (e.g. /bin/sh -> busybox, /lib64 -> lib).
  const files = await elfClosure(spec.root, wanted);
  for (const d of dirs) await mkdir(join(stage, d), {recursive: true});
  for (const f of [...files, ...dirLinks]) await copyIntoStage(spec.root, stage, f);

  // Kernel modules: feature globs + extra names, closed over modules.dep/softdep.
  const tree = await readModuleTree(spec.modulesDir);
  const selected = matchModuleGlobs(tree, await featureGlobs(spec.root, spec.featuresDir, spec.features));
  for (const name of spec.extraModules ?? []) {
    const p = tree.byName.get(name.replace(/-/g, '_'));
    if (!p) throw new PsyError('unknown-module', `initramfs: kernel ${spec.kernelVersion} has no module ${name}`);
    selected.push(p);
  }
  const modules = moduleClosure(tree, selected);
  const modStage = join(stage, 'lib/modules', spec.kernelVersion);
  await mkdir(modStage, {recursive: true});
  for (const m of modules) {
    const dst = join(modStage, m.replace(/\.ko\.(gz|xz|zst)$/, '.ko'));
    await mkdir(dirname(dst), {recursive: true});
    await writeFile(dst, await decompressModule(join(spec.modulesDir, m)));
  }
  for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
    await copyFile(join(spec.modulesDir, f), join(modStage, f)).catch(() => {});
  }
  await run('depmod', ['-b', stage, spec.kernelVersion], {captureStdout: true});

  const init = await readFile(spec.init);
  await writeFile(join(stage, 'init'), init);
  await chmod(join(stage, 'init'), 0o755);

  const entries = [...(await cpioEntriesFromDir(stage)), ...devNodes];
  const archive = cpioArchive(entries, spec.epoch);
  await writeFile(out, await compress(archive, spec.compression, run));
  return {modules, files};
}
