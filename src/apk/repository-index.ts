import {readdirSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {writeFileAtomicSync} from '../fs/atomic-write.js';
import {readApk} from './apk-package.js';
import {writeApkIndex} from './apkindex.js';
import type {Keyring, SigningKey} from './keys.js';
import type {IndexRecord} from './package-meta.js';
import type {SignatureAlgorithm} from './signature.js';

export interface IndexRepositoryOptions {
  /** The `<base>/<arch>` folder holding the .apk files. */
  readonly archDir: string;
  readonly key: SigningKey;
  readonly description: string;
  readonly mtime: number;
  /** Verify each package's signature with these keys before indexing (skipped when absent). */
  readonly keyring?: Keyring;
  readonly algorithm?: SignatureAlgorithm;
  /**
   * Record `noarch` packages under this arch, as `apk index --rewrite-arch` (abuild) does:
   * apk finds a package at `<repo>/<A:>/<file>`, so a noarch package in an x86_64 folder
   * must say x86_64 in the index.
   */
  readonly rewriteArch?: string;
}

/**
 * Indexes every .apk of a repository folder into a signed APKINDEX.tar.gz beside them
 * (`apk index` + `abuild-sign`). The index is written to a temporary name and renamed,
 * so a reader never sees half an index.
 */
export function indexRepository(opts: IndexRepositoryOptions): {records: IndexRecord[]; path: string} {
  const records: IndexRecord[] = [];
  for (const name of readdirSync(opts.archDir).sort()) {
    if (!name.endsWith('.apk')) continue;
    const path = join(opts.archDir, name);
    const pkg = readApk(readFileSync(path), path, opts.keyring ? {keyring: opts.keyring} : {skipSignature: true});
    const arch = pkg.meta.arch === 'noarch' && opts.rewriteArch ? opts.rewriteArch : pkg.meta.arch;
    records.push({...pkg.meta, arch, checksum: pkg.checksum, size: pkg.size});
  }
  const bytes = writeApkIndex({records, description: opts.description, key: opts.key, mtime: opts.mtime, algorithm: opts.algorithm});
  const out = join(opts.archDir, 'APKINDEX.tar.gz');
  writeFileAtomicSync(out, bytes);
  return {records, path: out};
}
