import {execFile} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, relative} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {generateSigningKey, keyringFromPem} from '../src/apk/keys.js';
import {buildDeclaredPackage, readPackageDeclaration} from '../src/apk/package-builder.js';
import {importedPackages, moduleClosure, packageDirs, shippedNpmPackages, stageNeuralupgradePackage} from '../src/upgrade/package-stage.js';
import {repoRoot} from './helpers/shared-data.js';
import {UpgradeRig} from './helpers/upgrade-rig.js';

const exec = promisify(execFile);

describe('neuralupgrade as an APK built by psy', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'upgrade-package-'));
  });
  afterAll(() => rmSync(dir, {recursive: true, force: true}));

  it('ships exactly the compiled modules neuralupgrade imports', () => {
    const mods = moduleClosure(join(repoRoot, 'dist'));
    for (const m of ['cli/neuralupgrade.js', 'upgrade/apply-os.js', 'boot/grubenv.js', 'sign/signature.js', 'disk/ext4.js']) expect(mods).toContain(m);
    expect(mods.some((m) => m.startsWith('engine/') || m.startsWith('apk/'))).toBe(false);
    // npm packages ship with their dependencies, found as Node finds them
    expect(importedPackages(join(repoRoot, 'dist'))).toContain('execa');
    const dirs = packageDirs(['execa'], repoRoot).map((d) => relative(repoRoot, d));
    for (const d of ['node_modules/execa', 'node_modules/cross-spawn', 'node_modules/signal-exit']) expect(dirs).toContain(d);
    expect(() => packageDirs(['no-such-package-psy'], repoRoot)).toThrow(/npm package no-such-package-psy .*not installed/);
    // their versions are the apkrepo target's parameter: a new version rebuilds the package
    const execa = JSON.parse(readFileSync(join(repoRoot, 'node_modules/execa/package.json'), 'utf8')) as {version: string};
    expect(shippedNpmPackages(join(repoRoot, 'dist'))).toContain(`execa@${execa.version}`);
    expect(shippedNpmPackages(join(dir, 'not-built'))).toEqual([]);
  });

  it('builds a signed APK whose launcher runs from the unpacked tree', async () => {
    const staged = stageNeuralupgradePackage(join(repoRoot, 'alpine/packages/neuralupgrade'), join(repoRoot, 'dist'), join(dir, 'stage'));
    const key = generateSigningKey('psy-test', 1_700_000_000, 2048);
    const built = buildDeclaredPackage(readPackageDeclaration(staged), key, 1_700_000_000);
    const pkg = readApk(built.bytes, 'neuralupgrade.apk', {keyring: keyringFromPem([[key.name, key.publicKeyPem]])});
    expect(pkg.signedBy).toBe(key.name);
    expect(pkg.meta).toMatchObject({name: 'neuralupgrade', version: '2.0.0-r0', arch: 'noarch'});
    expect(pkg.meta.depends).toEqual(expect.arrayContaining(['nodejs', 'e2fsprogs', 'e2fsprogs-extra', 'mtools', 'sfdisk', 'blkid']));
    const launcher = pkg.dataEntries.find((e) => e.path === 'usr/sbin/neuralupgrade');
    expect(launcher?.mode).toBe(0o755);
    expect(pkg.dataEntries.some((e) => e.path === 'usr/lib/neuralupgrade/cli/neuralupgrade.js')).toBe(true);
    expect(pkg.dataEntries.some((e) => e.path === 'usr/lib/neuralupgrade/node_modules/execa/package.json')).toBe(true);
    expect(pkg.dataEntries.some((e) => e.path.endsWith('.d.ts'))).toBe(false);

    // the staged tree is the package's content: run it with node, as a node would
    const nu = join(staged, 'files', 'usr', 'sbin', 'neuralupgrade');
    const help = await exec(process.execPath, [nu, '--help']);
    expect(help.stdout).toMatch(/^neuralupgrade: verified A\/B updates for psyopsOS/);
    const rig = new UpgradeRig('upgrade-package');
    try {
      const img = await rig.image();
      const st = await exec(process.execPath, [nu, 'status', '--json', '--disk', img, '--pubkey', rig.pubkeyPath]);
      expect(JSON.parse(st.stdout).nextBoot.reason).toMatch(/built-in default/);
    } finally {
      rig.cleanup();
    }
  });
});
