import {readFile, readdir, stat} from 'node:fs/promises';
import {join, posix} from 'node:path';
import {readFileInRoot} from '../apk/root-path.js';
import {PsyError} from '../errors.js';

/**
 * Kernel module selection the way mkinitfs does it: feature lists (features.d/*.modules)
 * hold globs relative to /lib/modules/<version>/ (a folder means everything under it),
 * and the chosen modules are closed over modules.dep and modules.softdep "pre:" lines.
 */

export interface ModuleTree {
  /** Folder holding kernel/, modules.dep, ... for one kernel version. */
  readonly dir: string;
  /** Every module path relative to `dir`, sorted. */
  readonly modules: readonly string[];
  /** modules.dep: module path → paths it depends on. */
  readonly deps: ReadonlyMap<string, readonly string[]>;
  /** Module name (dashes as underscores) → module path. */
  readonly byName: ReadonlyMap<string, string>;
  /** Module name → names that must load first (softdep pre:). */
  readonly softPre: ReadonlyMap<string, readonly string[]>;
}

export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.(gz|xz|zst))?$/, '').replace(/-/g, '_');
}

async function listModules(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), {withFileTypes: true})) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listModules(dir, r)));
    else if (/\.ko(\.(gz|xz|zst))?$/.test(e.name)) out.push(r);
  }
  return out;
}

export async function readModuleTree(dir: string): Promise<ModuleTree> {
  let depText: string;
  try {
    depText = await readFile(join(dir, 'modules.dep'), 'utf8');
  } catch {
    throw new PsyError('missing-modules-dep', `${dir}/modules.dep is missing; run depmod on the kernel's module tree first`);
  }
  const deps = new Map<string, string[]>();
  for (const line of depText.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    deps.set(
      line.slice(0, i),
      line
        .slice(i + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    );
  }
  // A kernel built without modules has no kernel/ folder: nothing to select from.
  const hasKernelDir = (await stat(join(dir, 'kernel')).catch(() => undefined))?.isDirectory() === true;
  const modules = hasKernelDir ? (await listModules(dir, 'kernel')).sort() : [];
  const byName = new Map<string, string>();
  for (const m of modules) byName.set(moduleName(m), m);
  const softPre = new Map<string, string[]>();
  const soft = await readFile(join(dir, 'modules.softdep'), 'utf8').catch(() => '');
  for (const line of soft.split('\n')) {
    const m = /^softdep\s+(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const pre = /pre:\s*([^:]*?)(\s+post:|$)/.exec(m[2]!);
    if (pre)
      softPre.set(
        m[1]!.replace(/-/g, '_'),
        pre[1]!
          .trim()
          .split(/\s+/)
          .filter(Boolean)
          .map((n) => n.replace(/-/g, '_')),
      );
  }
  return {dir, modules, deps, byName, softPre};
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // A pattern matches a module file, or a folder and everything beneath it.
  return new RegExp(`^${re}(/.*)?$`);
}

/** Modules matched by feature-list globs (lines of *.modules files), sorted. */
export function matchModuleGlobs(tree: ModuleTree, globs: readonly string[]): string[] {
  const res = globs
    .map((g) => g.trim())
    .filter((g) => g !== '' && !g.startsWith('#'))
    .map(globToRegExp);
  return tree.modules.filter((m) => res.some((r) => r.test(m)));
}

/** A feature list of the installed mkinitfs, read inside the installed root. */
async function featureList(root: string, featuresDir: string, file: string): Promise<string | undefined> {
  return (await readFileInRoot(root, posix.join(featuresDir, file), 'mkinitfs features'))?.toString('utf8');
}

/** Read the globs of the named features from a features.d folder (inside `root`). */
export async function featureGlobs(root: string, featuresDir: string, features: readonly string[]): Promise<string[]> {
  const globs: string[] = [];
  for (const f of features) {
    const text = await featureList(root, featuresDir, `${f}.modules`);
    if (text === undefined) {
      // A feature may list only files (e.g. keymap); one with neither is a mistake.
      if ((await featureList(root, featuresDir, `${f}.files`)) === undefined) {
        throw new PsyError('unknown-feature', `mkinitfs feature ${f} has no ${f}.modules or ${f}.files in ${featuresDir}`);
      }
      continue;
    }
    globs.push(...text.split('\n'));
  }
  return globs;
}

/** File globs (absolute paths in the root) of the named features' *.files lists. */
export async function featureFiles(root: string, featuresDir: string, features: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const f of features) {
    const text = (await featureList(root, featuresDir, `${f}.files`)) ?? '';
    out.push(
      ...text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#')),
    );
  }
  return out;
}

/** The given modules plus everything they depend on (modules.dep and softdep pre:). */
export function moduleClosure(tree: ModuleTree, selected: readonly string[]): string[] {
  const out = new Set<string>();
  const queue = [...selected];
  while (queue.length) {
    const m = queue.pop()!;
    if (out.has(m)) continue;
    out.add(m);
    for (const d of tree.deps.get(m) ?? []) queue.push(d);
    for (const n of tree.softPre.get(moduleName(m)) ?? []) {
      const p = tree.byName.get(n);
      if (p) queue.push(p);
    }
  }
  return [...out].sort();
}

/** The firmware=... entries of a module's .modinfo section (what `modinfo -F firmware` prints). */
export function moduleFirmware(ko: Buffer): string[] {
  const out: string[] = [];
  const key = Buffer.from('firmware=');
  let i = ko.indexOf(key);
  while (i !== -1) {
    if (i === 0 || ko[i - 1] === 0) {
      const end = ko.indexOf(0, i);
      out.push(ko.subarray(i + key.length, end).toString('latin1'));
    }
    i = ko.indexOf(key, i + 1);
  }
  return out;
}
