/**
 * The real apk-tools (built from source by test/helpers/apk-tools.ts) against the
 * packages and indexes psy writes: `apk verify` accepts every one, and `apk index` of
 * the same packages writes psy's APKINDEX text.
 */
import {execFileSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {buildApk} from '../src/apk/apk-writer.js';
import {generateSigningKey, type SigningKey} from '../src/apk/keys.js';
import {emptyMeta} from '../src/apk/package-meta.js';
import {buildRepository} from '../src/apk/package-builder.js';
import {indexRepository} from '../src/apk/repository-index.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {apkTools, haveApkTools} from './helpers/apk-tools.js';
import {declareOwnPackages} from './helpers/oracle-packages.js';
import {haveAlpineTestData} from './helpers/shared-data.js';

const EPOCH = 1700000000;

describe.skipIf(!haveAlpineTestData() || !haveApkTools())('real apk-tools reads the packages and indexes psy writes', () => {
  let fx: FixtureRepository;
  let work: string;
  let keysDir: string;
  const repos: Array<{name: string; archDir: string; rewriteArch: boolean}> = [];
  const apk = (...args: string[]) => apkTools().run(args);

  beforeAll(async () => {
    fx = await buildFixtureRepository({kernel: false});
    work = mkdtempSync(join(tmpdir(), 'psy-apk-oracle-pkg-'));
    keysDir = join(work, 'keys');
    mkdirSync(keysDir);
    writeFileSync(join(keysDir, fx.keyName), readFileSync(join(fx.keysDir, fx.keyName)));
    repos.push({name: 'fixture (minirootfs re-packed by psy)', archDir: fx.archDir, rewriteArch: false});
    // psy's own packages, signed with SHA-1 (abuild's default) and SHA-256
    const packagesDir = declareOwnPackages(join(work, 'project'));
    for (const algorithm of ['RSA', 'RSA256'] as const) {
      const key = generateSigningKey(`psy-${algorithm.toLowerCase()}`, 0x66000000);
      writeFileSync(join(keysDir, key.name), key.publicKeyPem);
      const repoDir = join(work, `own-${algorithm}`);
      buildRepository({packagesDir, repoDir, arch: 'x86_64', key, sourceDateEpoch: EPOCH, algorithm, description: 'own'});
      repos.push({name: `own packages (${algorithm})`, archDir: join(repoDir, 'x86_64'), rewriteArch: true});
    }
    // buildApk used directly, with a file whose directories are not listed
    const key: SigningKey = generateSigningKey('psy-direct', 0x66000001);
    writeFileSync(join(keysDir, key.name), key.publicKeyPem);
    const direct = join(work, 'direct/x86_64');
    mkdirSync(direct, {recursive: true});
    const built = buildApk({
      meta: {...emptyMeta('psy-direct', '0.1-r0'), buildDate: EPOCH, arch: 'x86_64'},
      entries: [{path: 'opt/psy/deep/file', type: 'file', mode: 0o644, data: Buffer.from('x')}],
      key,
    });
    writeFileSync(join(direct, 'psy-direct-0.1-r0.apk'), built.bytes);
    indexRepository({archDir: direct, key, description: 'direct', mtime: EPOCH});
    repos.push({name: 'buildApk without directory entries', archDir: direct, rewriteArch: false});
  });
  afterAll(() => rmSync(work, {recursive: true, force: true}));

  it('runs apk-tools 2.14.10 built from source', () => {
    expect(apk('--version')).toMatch(/^apk-tools 2\.14\.10, compiled for x86_64\./);
  });

  it('apk verify accepts every package and every index psy wrote', () => {
    const probe = join(work, 'probe');
    mkdirSync(probe, {recursive: true});
    const files = repos.flatMap((r) =>
      readdirSync(r.archDir)
        .filter((f) => f.endsWith('.apk') || f === 'APKINDEX.tar.gz')
        .map((f) => join(r.archDir, f)),
    );
    expect(files.length).toBeGreaterThan(18);
    const out = apk('--root', probe, '--keys-dir', keysDir, 'verify', ...files);
    expect(out.trim().split('\n')).toEqual(files.map((p) => `${p}: 0 - OK`));
  });

  it('apk index of the same packages writes the same APKINDEX text as psy', () => {
    for (const [i, r] of repos.entries()) {
      const out = join(work, `apk-index-${i}.tar.gz`);
      const apks = readdirSync(r.archDir)
        .filter((f) => f.endsWith('.apk'))
        .map((f) => join(r.archDir, f));
      const mine = join(work, `mine-${i}`);
      const theirs = join(work, `theirs-${i}`);
      mkdirSync(mine);
      mkdirSync(theirs);
      execFileSync('tar', ['-xzf', join(r.archDir, 'APKINDEX.tar.gz'), '-C', mine]);
      const description = readFileSync(join(mine, 'DESCRIPTION'), 'utf8');
      // abuild indexes with --rewrite-arch, as psy's repository builder does
      apk(
        '--root',
        join(work, 'probe'),
        '--keys-dir',
        keysDir,
        'index',
        '-o',
        out,
        '-d',
        description,
        ...(r.rewriteArch ? ['--rewrite-arch', 'x86_64'] : []),
        ...apks,
      );
      execFileSync('tar', ['-xzf', out, '-C', theirs]);
      expect(readFileSync(join(mine, 'APKINDEX'), 'utf8'), r.name).toBe(readFileSync(join(theirs, 'APKINDEX'), 'utf8'));
      expect(readFileSync(join(mine, 'DESCRIPTION'), 'utf8'), r.name).toBe(readFileSync(join(theirs, 'DESCRIPTION'), 'utf8'));
    }
  });
});
