import {readdirSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {beforeAll, describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {readApkIndex} from '../src/apk/apkindex.js';
import {loadKeyring} from '../src/apk/keys.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

describe.skipIf(!haveAlpineTestData())('offline fixture repository', () => {
  let fx: FixtureRepository;
  beforeAll(async () => {
    fx = await buildFixtureRepository();
  }, 600_000);

  it('is a signed repository whose index matches every package', () => {
    const keyring = loadKeyring(fx.keysDir);
    const index = readApkIndex(readFileSync(join(fx.archDir, 'APKINDEX.tar.gz')), 'fixture', {keyring});
    expect(index.signedBy).toBe(fx.keyName);
    const apks = readdirSync(fx.archDir).filter((f) => f.endsWith('.apk'));
    expect(index.records.length).toBe(apks.length);
    for (const r of index.records) {
      if (r.name === 'linux-lts') continue; // read below once (large)
      const bytes = readFileSync(join(fx.archDir, `${r.name}-${r.version}.apk`));
      const pkg = readApk(bytes, r.name, {keyring, expectedChecksum: r.checksum});
      expect(pkg.size).toBe(r.size);
    }
    expect(index.records.map((r) => r.name)).toEqual(expect.arrayContaining([...fx.minirootfsPackages, 'alpine-base', 'mkinitfs', 'linux-lts']));
  });

  it('linux-lts is laid out as Alpine lays out its kernel package', () => {
    const keyring = loadKeyring(fx.keysDir);
    const name = readdirSync(fx.archDir).find((f) => f.startsWith('linux-lts-'))!;
    const pkg = readApk(readFileSync(join(fx.archDir, name)), name, {keyring});
    const paths = new Set(pkg.dataEntries.map((e) => e.path));
    for (const p of ['boot/vmlinuz-lts', 'boot/config-lts', 'boot/System.map-lts']) expect(paths.has(p)).toBe(true);
    const rel = fx.kernelRelease!;
    expect(rel).toMatch(/^\d+\.\d+\.\d+-\d+-amd64$/);
    expect(paths.has(`lib/modules/${rel}/modules.dep`)).toBe(true);
    expect([...paths].some((p) => /^lib\/modules\/[^/]+\/kernel\/fs\/squashfs\/squashfs\.ko/.test(p))).toBe(true);
    expect(pkg.meta.depends).toEqual(['initramfs-generator']);
    expect(pkg.dataEntries.find((e) => e.path === 'usr/share/kernel/lts/kernel.release')?.data.toString()).toBe(`${rel}\n`);
  });

  it('mkinitfs carries the real initramfs-init and features.d, and a named nlplug-findfs stand-in', () => {
    const keyring = loadKeyring(fx.keysDir);
    const pkg = readApk(readFileSync(join(fx.archDir, 'mkinitfs-3.13.0-r0.apk')), 'mkinitfs', {keyring});
    const init = pkg.dataEntries.find((e) => e.path === 'usr/share/mkinitfs/initramfs-init')!;
    expect(init.data.equals(readFileSync(join(alpineTestData, 'mkinitfs-3.13.0', 'initramfs-init')))).toBe(true);
    expect(pkg.dataEntries.some((e) => e.path === 'etc/mkinitfs/features.d/squashfs.modules')).toBe(true);
    const nl = pkg.dataEntries.find((e) => e.path === 'sbin/nlplug-findfs')!;
    expect(nl.data.toString()).toContain('nlplug-findfs stand-in');
    expect(pkg.meta.provides).toEqual(['initramfs-generator']);
    expect(pkg.meta.providerPriority).toBe(900);
  });

  it('is reused while its inputs are unchanged', async () => {
    const again = await buildFixtureRepository();
    expect(again.repoDir).toBe(fx.repoDir);
    expect(again.keyName).toBe(fx.keyName);
  });
});
