import {existsSync} from 'node:fs';
import {isAbsolute, join, resolve as resolvePath} from 'node:path';
import {PsyError} from '../errors.js';
import type {OwnLockedPackage} from './lockfile.js';
import type {IndexRecord} from './package-meta.js';
import {readPackageDeclaration} from './package-builder.js';
import {DEFAULT_PACKAGES_DIR, type AlpineSettings} from './settings.js';

/** The name our declarations go by as a resolver repository (never a lock `repository`). */
export const OWN_REPOSITORY = 'own-packages';

export function packagesDirOf(settings: AlpineSettings, projectRoot: string): string {
  const d = settings.packagesDir ?? DEFAULT_PACKAGES_DIR;
  return isAbsolute(d) ? d : resolvePath(projectRoot, d);
}

/**
 * Our declared packages as index records, for resolving them together with the Alpine
 * world. Only metadata: the packages themselves are built by the graph, so there is no
 * checksum to pin yet (the lock pins name and version).
 */
export function ownPackageRecords(settings: AlpineSettings, projectRoot: string): IndexRecord[] {
  const names = settings.ownPackages ?? [];
  const dir = packagesDirOf(settings, projectRoot);
  return names.map((n, i) => {
    const declDir = join(dir, n);
    if (!existsSync(declDir)) {
      throw new PsyError('apk-settings', `settings.alpine.ownPackages[${i}]: ${declDir} does not exist (no package '${n}' is declared)`);
    }
    const decl = readPackageDeclaration(declDir);
    return {...decl.meta, checksum: `own:${decl.meta.name}-${decl.meta.version}`, size: 0};
  });
}

/** Where the locked versions of our packages differ from the declarations now. */
export function ownPackageDrift(settings: AlpineSettings, projectRoot: string, locked: readonly OwnLockedPackage[]): string[] {
  const now = new Map(ownPackageRecords(settings, projectRoot).map((r) => [r.name, r.version]));
  const out: string[] = [];
  for (const p of locked) {
    const v = now.get(p.name);
    if (v !== undefined && v !== p.version) out.push(`${p.name}: locked ${p.version} but the declaration says ${v}`);
  }
  return out;
}
