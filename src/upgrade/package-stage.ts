import {cpSync, existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {builtinModules} from 'node:module';
import {dirname, join, relative, resolve} from 'node:path';
import {PsyError} from '../errors.js';

/** Where the program goes inside the package. */
export const PACKAGE_LIB_DIR = 'usr/lib/neuralupgrade';
const ENTRY = 'cli/neuralupgrade.js';
/** Imported on demand only (S3 repositories); nodes use the HTTP(S) endpoint without it. */
const OPTIONAL = new Set(['@aws-sdk/client-s3']);

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g;

/** The compiled modules neuralupgrade needs: the relative-import closure of its entry. */
export function moduleClosure(distDir: string, entry = ENTRY): string[] {
  const seen = new Set<string>();
  const external = new Set<string>();
  const visit = (rel: string) => {
    if (seen.has(rel)) return;
    const abs = join(distDir, rel);
    if (!existsSync(abs)) throw new PsyError('missing-input', `${abs} does not exist (run npm run build first)`);
    seen.add(rel);
    for (const m of readFileSync(abs, 'utf8').matchAll(IMPORT)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(relative(distDir, resolve(dirname(abs), spec)));
      else if (!spec.startsWith('node:') && !builtinModules.includes(spec) && !OPTIONAL.has(spec)) external.add(spec);
    }
  };
  visit(entry);
  if (external.size) throw new PsyError('package-external', `neuralupgrade imports packages that are not bundled: ${[...external].sort().join(', ')}`);
  return [...seen].sort();
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
  writeFileSync(join(lib, 'package.json'), JSON.stringify({type: 'module'}) + '\n');
  return dest;
}
