import {cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync} from 'node:fs';
import {builtinModules} from 'node:module';
import {dirname, join, relative, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
import {PsyError} from '../errors.js';

/** Where the program goes inside the package. */
export const PACKAGE_LIB_DIR = 'usr/lib/neuralupgrade';
const ENTRY = 'cli/neuralupgrade.js';
/** Imported on demand only (S3 repositories); nodes use the HTTP(S) endpoint without it. */
const OPTIONAL = new Set(['@aws-sdk/client-s3']);

// imports, and packages resolved from psy's own install (createRequire(import.meta.url).resolve)
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|createRequire\(import\.meta\.url\)\.resolve\(\s*)['"]([^'"]+)['"]/g;

/** The npm package a bare import names: `@scope/name` or `name`, without a subpath. */
function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** The npm packages the compiled modules import (bare specifiers, not node's own). */
export function importedPackages(distDir: string, entry = ENTRY): string[] {
  const names = new Set<string>();
  moduleClosure(distDir, entry, (spec) => names.add(packageName(spec)));
  return [...names].sort();
}

/**
 * The compiled modules neuralupgrade needs: the relative-import closure of its entry.
 * Each npm package import it meets goes to `onPackage` (see importedPackages).
 */
export function moduleClosure(distDir: string, entry = ENTRY, onPackage?: (spec: string) => void): string[] {
  const seen = new Set<string>();
  const visit = (rel: string) => {
    if (seen.has(rel)) return;
    const abs = join(distDir, rel);
    if (!existsSync(abs)) throw new PsyError('missing-input', `${abs} does not exist (run npm run build first)`);
    seen.add(rel);
    for (const m of readFileSync(abs, 'utf8').matchAll(IMPORT)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(relative(distDir, resolve(dirname(abs), spec)));
      else if (!spec.startsWith('node:') && !builtinModules.includes(spec) && !OPTIONAL.has(spec)) onPackage?.(spec);
    }
  };
  visit(entry);
  return [...seen].sort();
}

/** Where Node would find package `name` for code in `fromDir`: the nearest node_modules holding it. */
function findPackageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The installed npm packages `names` need at run time: each package folder (found from
 * `fromDir` as Node finds it) and, recursively, those of its dependencies.
 */
export function packageDirs(names: readonly string[], fromDir: string): string[] {
  const found = new Set<string>();
  const visit = (name: string, from: string, by: string) => {
    const dir = findPackageDir(name, from);
    if (dir === undefined)
      throw new PsyError('package-external', `neuralupgrade needs the npm package ${name} (imported by ${by}), which is not installed: run npm ci`);
    if (found.has(dir)) return;
    found.add(dir);
    const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys({...meta.dependencies, ...meta.optionalDependencies}).sort()) {
      if (!OPTIONAL.has(dep)) visit(dep, dir, name);
    }
  };
  for (const name of names) visit(name, fromDir, 'neuralupgrade');
  return [...found].sort();
}

/**
 * `name@version` of every npm package neuralupgrade's package ships (found as
 * stageNeuralupgradePackage finds them): a target parameter, so that new versions (npm
 * ci after a lock change) rebuild the package. Empty when `distDir` is not built yet.
 */
export function shippedNpmPackages(distDir: string): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  try {
    return packageDirs(importedPackages(resolve(distDir)), here).map((dir) => {
      const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {name?: string; version?: string};
      return `${meta.name}@${meta.version}`;
    });
  } catch {
    return [];
  }
}

/** Files of a package the program runs: not types, sources, maps, docs or nested packages. */
const NOT_SHIPPED = /(\.d\.[cm]?ts|\.[cm]?ts|\.map|\.md)$/;

function packageFiles(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), {withFileTypes: true}).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') out.push(...packageFiles(dir, path));
    } else if (e.isFile() && !NOT_SHIPPED.test(e.name)) {
      out.push(path);
    }
  }
  return out;
}

/**
 * Lays out the neuralupgrade APK declaration with its program: the declaration folder
 * (alpine/packages/neuralupgrade: apk.json and the launcher) copied to
 * `<outDir>/neuralupgrade/`, plus the compiled modules under files/usr/lib/neuralupgrade.
 * The result is what src/apk's package builder reads.
 */
export function stageNeuralupgradePackage(declarationDir: string, distDir: string, outDir: string): string {
  const dest = join(outDir, 'neuralupgrade');
  cpSync(declarationDir, dest, {recursive: true});
  const lib = join(dest, 'files', PACKAGE_LIB_DIR);
  for (const rel of moduleClosure(distDir)) {
    mkdirSync(dirname(join(lib, rel)), {recursive: true});
    // the source map comment points at files that are not shipped
    writeFileSync(join(lib, rel), readFileSync(join(distDir, rel), 'utf8').replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n'));
  }
  // npm packages come from psy's own install (dist/ may be a copy elsewhere) and keep
  // their place relative to it (node_modules/...), so Node resolves them inside the
  // package as it does in psy
  const here = dirname(fileURLToPath(import.meta.url));
  let install = here;
  while (!existsSync(join(install, 'node_modules')) && dirname(install) !== install) install = dirname(install);
  for (const pkgDir of packageDirs(importedPackages(distDir), here)) {
    const at = relative(install, pkgDir);
    if (at.startsWith('..')) throw new PsyError('package-external', `${pkgDir} lies outside psy's install ${install}`);
    for (const rel of packageFiles(pkgDir)) {
      mkdirSync(dirname(join(lib, at, rel)), {recursive: true});
      cpSync(join(pkgDir, rel), join(lib, at, rel));
    }
  }
  writeFileSync(join(lib, 'package.json'), JSON.stringify({type: 'module'}) + '\n');
  return dest;
}
