/**
 * Loads build.config.ts and the local TypeScript modules it imports (targets/, rules/,
 * src/ libraries the rules call). Each module is transpiled with @swc/core into
 * cache/config/mod/, named by the hash of its own source, its path and everything it
 * imports, with local import specifiers rewritten to the compiled names.
 *
 * A manifest per config file lists the modules with their stat data and content hash.
 * When every module still matches, the compiled entry is imported directly: a no-op
 * build never loads @swc/core.
 *
 * The loader also knows each module's transitive local imports, so it can give a rule
 * its identity: the hash of the rule module's source and of everything it imports.
 */
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync} from 'node:fs';
import {basename, dirname, isAbsolute, join, relative, resolve} from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {isPsyError, PsyError} from '../errors.js';
import type {PsyConfig} from './config.js';
import type {FileRecord} from './state-log.js';
import {STAT_FIELDS, statBatch} from './stat-batch.js';

export interface LoadConfigOptions {
  /** Folder to look for build.config.ts in, and to resolve `configPath` against. */
  readonly cwd: string;
  /** Config file (default `<cwd>/build.config.ts`). Its folder is the project root. */
  readonly configPath?: string;
}

export interface LoadedConfig {
  /** Absolute project root: the config file's folder. */
  readonly root: string;
  /** Absolute path of the config file. */
  readonly configPath: string;
  readonly config: PsyConfig;
  /** Absolute paths of every local source module the config is made of. */
  readonly modules: readonly string[];
  /** Hash of every module's content: the same identity means the same config code. */
  readonly identity: string;
  /** Files the config read while it was evaluated (e.g. a JSON list of targets). */
  readonly readFiles: readonly string[];
  /**
   * Hash of a module's source and its transitive local imports, given its URL as the
   * module saw it (`import.meta.url`) or its absolute path; undefined for a module the
   * loader did not load.
   */
  moduleIdentity(moduleUrlOrPath: string): string | undefined;
}

/** A loaded module's stat data and content hash, as the state log keeps them for files. */
interface ManifestModule extends FileRecord {
  /** Hash over this module and its transitive local imports. */
  readonly identity: string;
  /** Compiled file name in cache/config/mod/. */
  readonly compiled: string;
}

interface Manifest {
  readonly version: typeof MANIFEST_VERSION;
  readonly entry: string;
  readonly modules: readonly ManifestModule[];
}

// 2: config modules import node:fs through the read-noting module (FS_READS)
const MANIFEST_VERSION = 2;
/** A stat taken within this many ms of the file's mtime does not prove it unchanged. */
const RACY_MS = 2000;

/** Config file names looked for when none is given, in this order. */
export const CONFIG_NAMES = ['build.config.ts', 'build.config.mjs', 'build.config.js'] as const;

/**
 * The config file for a folder: `configPath` resolved against `cwd` when given, else the
 * first of CONFIG_NAMES there (build.config.ts when there is none, for the error).
 */
export function findConfig(cwd: string, configPath?: string): string {
  if (configPath !== undefined) return resolve(cwd, configPath);
  for (const name of CONFIG_NAMES) {
    const path = join(cwd, name);
    if (existsSync(path)) return path;
  }
  return resolve(cwd, CONFIG_NAMES[0]);
}

export function configCacheDir(root: string): string {
  return join(root, 'cache', 'config');
}

export async function loadConfig(options: LoadConfigOptions): Promise<LoadedConfig> {
  const configPath = findConfig(options.cwd, options.configPath);
  if (!existsSync(configPath)) {
    throw new PsyError(
      'no-config',
      options.configPath === undefined
        ? `no build.config.ts in ${options.cwd} (nor build.config.mjs or .js; use --config FILE or -C DIR)`
        : `config file ${options.configPath} not found`,
    );
  }
  const root = dirname(configPath);
  const cacheDir = configCacheDir(root);
  const manifestPath = join(cacheDir, `manifest-${safeName(basename(configPath))}.json`);

  let manifest = await validManifest(manifestPath, configPath);
  if (manifest === undefined) {
    manifest = await compileAll(configPath, root, cacheDir);
    writeAtomic(manifestPath, JSON.stringify(manifest));
  }
  const readFiles: string[] = [];
  const config = await evaluate(manifest, root, cacheDir, configPath, readFiles);

  const byPath = new Map(manifest.modules.map((m) => [m.path, m.identity]));
  return {
    root,
    configPath,
    config,
    modules: manifest.modules.map((m) => m.path),
    identity: manifestIdentity(manifest),
    readFiles,
    moduleIdentity(moduleUrlOrPath) {
      const path = moduleUrlOrPath.startsWith('file:') ? fileURLToPath(moduleUrlOrPath) : moduleUrlOrPath;
      return byPath.get(path);
    },
  };
}

function manifestIdentity(manifest: Manifest): string {
  return manifest.modules
    .map((m) => `${m.path}\0${m.hash}`)
    .sort()
    .join('\n');
}

/**
 * The config's identity (see LoadedConfig.identity) without evaluating it, or undefined
 * when a module changed since it was last compiled. Cheap: stats the modules only.
 */
export async function configIdentity(options: LoadConfigOptions): Promise<{root: string; configPath: string; identity: string} | undefined> {
  const configPath = findConfig(options.cwd, options.configPath);
  const root = dirname(configPath);
  const manifestPath = join(configCacheDir(root), `manifest-${safeName(basename(configPath))}.json`);
  const manifest = await validManifest(manifestPath, configPath);
  return manifest === undefined ? undefined : {root, configPath, identity: manifestIdentity(manifest)};
}

/**
 * The manifest, if every module it lists is unchanged; reads no module unless racy. A
 * racy or touched module whose content is unchanged gets its new stat recorded (when the
 * stat is no longer racy), so the next check need not read it again.
 */
async function validManifest(manifestPath: string, configPath: string): Promise<Manifest | undefined> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
  if (manifest.version !== MANIFEST_VERSION || manifest.entry !== configPath) return undefined;
  const compiled = join(configCacheDir(dirname(configPath)), 'mod', compiledOf(manifest));
  const statAt = Date.now();
  const stats = statBatch([...manifest.modules.map((m) => m.path), compiled]);
  let refreshed: ManifestModule[] | undefined;
  for (let i = 0; i < manifest.modules.length; i++) {
    const m = manifest.modules[i]!;
    const k = STAT_FIELDS * i;
    const size = stats[k]!;
    if (size === -1) return undefined;
    const [mtimeMs, ctimeMs, ino] = [stats[k + 1]!, stats[k + 2]!, stats[k + 3]!];
    const sameStat = size === m.size && mtimeMs === m.mtimeMs && ctimeMs === m.ctimeMs && ino === m.ino;
    if (sameStat && m.recordedAt - m.mtimeMs > RACY_MS) continue;
    const {hashBytes, initHash} = await import('./hash.js');
    await initHash();
    if (hashBytes(readFileSync(m.path)) !== m.hash) return undefined;
    if (statAt - mtimeMs > RACY_MS && statAt - ctimeMs > RACY_MS) {
      refreshed ??= [...manifest.modules];
      refreshed[i] = {...m, size, mtimeMs, ctimeMs, ino, recordedAt: statAt};
    }
  }
  if (stats[STAT_FIELDS * manifest.modules.length] === -1) return undefined;
  if (refreshed !== undefined) {
    manifest = {...manifest, modules: refreshed};
    writeAtomic(manifestPath, JSON.stringify(manifest));
  }
  return manifest;
}

function compiledOf(manifest: Manifest): string {
  const entry = manifest.modules.find((m) => m.path === manifest.entry);
  if (entry === undefined) throw new Error('config manifest without its entry module');
  return entry.compiled;
}

interface SourceModule {
  readonly path: string;
  readonly source: Buffer;
  readonly hash: string;
  readonly code: string;
  /** Local imports: specifier as written → resolved absolute .ts path. */
  readonly imports: Map<string, string>;
  readonly stat: {size: number; mtimeMs: number; ctimeMs: number; ino: number};
  readonly recordedAt: number;
}

const TS_MODULE = /\.m?ts$/;
const LOCAL_MODULE = /\.(?:m?ts|m?js)$/;
const SPECIFIER = /(\bfrom\s*|\bimport\s*\(?\s*)(["'])([^"'\n]+)\2/g;

async function compileAll(entry: string, root: string, cacheDir: string): Promise<Manifest> {
  const {hashBytes, hashString, initHash} = await import('./hash.js');
  await initHash();
  const swc = await import('@swc/core');

  const modules = new Map<string, SourceModule>();
  const pending = [entry];
  while (pending.length > 0) {
    const path = pending.pop()!;
    if (modules.has(path)) continue;
    const recordedAt = Date.now();
    const st = statSync(path);
    const source = readFileSync(path);
    let code: string;
    try {
      code = swc.transformSync(source.toString('utf8'), {
        filename: path,
        sourceMaps: false,
        jsc: {parser: TS_MODULE.test(path) ? {syntax: 'typescript'} : {syntax: 'ecmascript'}, target: 'es2022'},
        module: {type: 'es6'},
      }).code;
    } catch (err) {
      throw syntaxError(err, path, root);
    }
    const imports = new Map<string, string>();
    for (const match of code.matchAll(SPECIFIER)) {
      const spec = match[3]!;
      if (!(spec.startsWith('.') || isAbsolute(spec) || spec.startsWith('file:'))) continue;
      const target = resolveLocal(spec, path);
      if (target === undefined) {
        throw new PsyError('config-import', `${relative(root, path)}: cannot resolve import '${spec}'`);
      }
      // Local modules are compiled beside the config, JavaScript ones (of a .js config) too.
      if (LOCAL_MODULE.test(target)) {
        imports.set(spec, target);
        pending.push(target);
      }
    }
    modules.set(path, {
      path,
      source,
      hash: hashBytes(source),
      code,
      imports,
      stat: {size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino},
      recordedAt,
    });
  }

  // Identity of a module = its own hash and path plus every module it reaches.
  const identities = new Map<string, string>();
  for (const path of modules.keys()) {
    const seen = new Set<string>();
    const stack = [path];
    while (stack.length > 0) {
      const p = stack.pop()!;
      if (seen.has(p)) continue;
      seen.add(p);
      for (const dep of modules.get(p)!.imports.values()) stack.push(dep);
    }
    const parts = [...seen].sort().map((p) => `${p}\0${modules.get(p)!.hash}`);
    identities.set(path, hashString(`${path}\n${FS_READS}\n${parts.join('\n')}`));
  }
  const compiledName = (path: string) => `${identities.get(path)!}-${safeName(basename(path).replace(LOCAL_MODULE, ''))}.mjs`;

  const modDir = join(cacheDir, 'mod');
  mkdirSync(modDir, {recursive: true});
  const out: ManifestModule[] = [];
  for (const m of modules.values()) {
    const name = compiledName(m.path);
    const file = join(modDir, name);
    if (!existsSync(file)) {
      const srcUrl = JSON.stringify(pathToFileURL(m.path).href);
      const code = m.code
        .replace(SPECIFIER, (whole, lead: string, quote: string, spec: string) => {
          if (FS_SPECIFIERS.has(spec)) return `${lead}${quote}./${FS_READS}${quote}`;
          const target = m.imports.get(spec);
          return target === undefined ? whole : `${lead}${quote}./${compiledName(target)}${quote}`;
        })
        .replaceAll('import.meta.url', srcUrl)
        .replaceAll('import.meta.dirname', JSON.stringify(dirname(m.path)))
        .replaceAll('import.meta.filename', JSON.stringify(m.path));
      writeAtomic(file, code);
    }
    out.push({
      path: m.path,
      ...m.stat,
      recordedAt: m.recordedAt,
      hash: m.hash,
      identity: identities.get(m.path)!,
      compiled: name,
    });
  }
  return {version: MANIFEST_VERSION, entry, modules: out};
}

/** './x.js' may name x.ts (TypeScript's NodeNext convention); bare names try .ts too. */
function resolveLocal(spec: string, from: string): string | undefined {
  const base = spec.startsWith('file:') ? fileURLToPath(spec) : isAbsolute(spec) ? spec : resolve(dirname(from), spec);
  const candidates: string[] = [];
  if (base.endsWith('.ts')) candidates.push(base);
  else if (base.endsWith('.js')) candidates.push(base.slice(0, -3) + '.ts', base);
  else if (base.endsWith('.mjs') || base.endsWith('.json')) candidates.push(base);
  else candidates.push(base + '.ts', join(base, 'index.ts'), base + '.js', join(base, 'index.js'));
  return candidates.find((c) => statSync(c, {throwIfNoEntry: false})?.isFile() === true);
}

function syntaxError(err: unknown, path: string, root: string): PsyError {
  const text = err instanceof Error ? err.message : String(err);
  const where = /,-\[(.*):(\d+):\d+\]/.exec(text);
  const what = /^\s*x\s+(.+)$/m.exec(text)?.[1]?.trim() ?? 'syntax error';
  const line = where?.[2] ?? '?';
  return new PsyError('config-syntax', `${relative(root, path)}:${line}: ${what}`);
}

async function evaluate(manifest: Manifest, root: string, cacheDir: string, configPath: string, readFiles: string[]): Promise<PsyConfig> {
  const file = join(cacheDir, 'mod', compiledOf(manifest));
  const rel = relative(root, configPath);
  let mod: {default?: unknown};
  const restore = await startRecording(join(cacheDir, 'mod'), readFiles);
  try {
    mod = (await import(pathToFileURL(file).href)) as {default?: unknown};
  } catch (err) {
    if (isPsyError(err)) throw err;
    let msg = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    for (const m of manifest.modules) msg = msg.replaceAll(join(cacheDir, 'mod', m.compiled), m.path);
    throw new PsyError('config-load', `${rel}: ${msg}`);
  } finally {
    restore();
  }
  const config = mod.default;
  if (typeof config !== 'object' || config === null || !('targets' in config)) {
    throw new PsyError('config-shape', `${rel}: the default export must be defineConfig({targets: [...]})`);
  }
  return config as PsyConfig;
}

/**
 * The files a config reads synchronously while it is evaluated are noted, so that the
 * no-op fast path and watch mode see them change. Scoped to the config's own modules:
 * their `node:fs` imports are rewritten to this module (written beside the compiled
 * modules), which wraps the reading functions and notes paths only while the loader has
 * a list open; nothing else in the process sees a different `node:fs`.
 */
const FS_READS_SOURCE = `import * as fs from 'node:fs';
import {resolve} from 'node:path';
import {fileURLToPath} from 'node:url';
export * from 'node:fs';
let into;
export function recordConfigReads(list) {
  const outer = into;
  into = list;
  return () => void (into = outer);
}
const noted = (f) => function (...args) {
  const p = args[0];
  if (into !== undefined) {
    if (typeof p === 'string') into.push(resolve(p));
    else if (p instanceof URL && p.protocol === 'file:') into.push(fileURLToPath(p));
  }
  return f.apply(this, args);
};
export const readFileSync = noted(fs.readFileSync);
export const readdirSync = noted(fs.readdirSync);
export const statSync = noted(fs.statSync);
export const lstatSync = noted(fs.lstatSync);
export const existsSync = noted(fs.existsSync);
export default {...fs.default, readFileSync, readdirSync, statSync, lstatSync, existsSync};
`;
/** Compiled modules name it and their names hash this in: bump with FS_READS_SOURCE. */
const FS_READS = 'fs-reads-1.mjs';
const FS_SPECIFIERS = new Set(['node:fs', 'fs']);

async function startRecording(modDir: string, into: string[]): Promise<() => void> {
  const file = join(modDir, FS_READS);
  if (!existsSync(file)) writeAtomic(file, FS_READS_SOURCE);
  const mod = (await import(pathToFileURL(file).href)) as {recordConfigReads(list: string[]): () => void};
  return mod.recordConfigReads(into);
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** Write a file via a temporary name and rename, so readers never see half of it. */
export function writeAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), {recursive: true});
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    if (typeof data === 'string') writeSync(fd, data);
    else writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
