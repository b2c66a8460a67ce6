import {execFile} from 'node:child_process';
import {copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, statSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {installFromLock, lockWorld} from '../src/apk/alpine-root.js';
import {validateAlpineSettings} from '../src/apk/settings.js';
import {stageNeuralupgradePackage} from '../src/upgrade/package-stage.js';
import {alpineSettingsFor, withDefaults} from '../targets/settings.js';
import {buildFixtureRepository} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {UpgradeRig} from './helpers/upgrade-rig.js';
import {fixtureSettings} from './os-project.js';

const run = promisify(execFile);
const NEEDS = ['nodejs', 'e2fsprogs', 'e2fsprogs-extra', 'mtools', 'sfdisk', 'blkid'];

/**
 * The offline image's runtime for neuralupgrade: the fixture's stand-ins for what its
 * package depends on, installed into an Alpine root by psy's installer, run there (in a
 * chroot with its own /proc, as on a node).
 */
describe.skipIf(!haveAlpineTestData() || process.getuid?.() !== 0)('neuralupgrade runs in the offline image root', () => {
  let dir: string;
  let root: string;
  const inRoot = (cmd: string[]) =>
    run('unshare', ['--mount', '--pid', '--fork', `--mount-proc=${join(root, 'proc')}`, 'chroot', root, ...cmd], {maxBuffer: 1 << 24});

  beforeAll(async () => {
    const fx = await buildFixtureRepository();
    dir = mkdtempSync(join(tmpdir(), 'psy-node-runtime-'));
    const settings = alpineSettingsFor(withDefaults(fixtureSettings(dir, fx, {world: [...fx.minirootfsWorld, ...NEEDS]})));
    const ctx = {settings: validateAlpineSettings(settings), projectRoot: dir};
    const lock = await lockWorld(ctx);
    root = join(dir, 'root');
    await installFromLock({...ctx, lock, targetRoot: root, sourceDateEpoch: 1_700_000_000});
    // neuralupgrade's package files, as its APK carries them
    const staged = stageNeuralupgradePackage(join(repoRoot, 'alpine/packages/neuralupgrade'), join(repoRoot, 'dist'), join(dir, 'stage'));
    cpSync(join(staged, 'files'), root, {recursive: true});
    mkdirSync(join(root, 'proc'), {recursive: true});
  }, 900_000);
  afterAll(() => {
    if (dir) rmSync(dir, {recursive: true, force: true});
  });

  it('resolves every dependency of neuralupgrade to a stand-in named as such', async () => {
    const {stdout} = await inRoot(['/bin/sh', '-c', 'cat /lib/apk/db/installed | grep "^P:.*stand-in"']);
    expect(stdout.split('\n').filter(Boolean).sort()).toEqual([
      'P:blkid-debian-stand-in',
      'P:e2fsprogs-debian-stand-in',
      'P:e2fsprogs-extra-debian-stand-in',
      'P:glibc-compat-debian-stand-in',
      'P:mtools-debian-stand-in',
      'P:nodejs-bun-stand-in',
      'P:sfdisk-debian-stand-in',
    ]);
  });

  it('runs node, the tools and neuralupgrade inside the root', async () => {
    const t0 = performance.now();
    const {stdout: v} = await inRoot(['/usr/bin/node', '-e', 'console.log(process.versions.bun ? "bun " + process.versions.bun : "node")']);
    const startMs = performance.now() - t0;
    expect(v.trim()).toBe('bun 1.4.5');
    for (const [cmd, pattern] of [
      [['/usr/sbin/debugfs', '-V'], /debugfs/],
      [['/usr/sbin/mke2fs', '-V'], /mke2fs/],
      [['/usr/bin/mcopy', '--version'], /mtools/],
      [['/usr/sbin/sfdisk', '--version'], /util-linux/],
      [['/usr/sbin/blkid', '--version'], /util-linux/],
    ] as const) {
      const r = await inRoot([...cmd]);
      expect(r.stdout + r.stderr).toMatch(pattern);
    }
    const help = await inRoot(['/usr/sbin/neuralupgrade', '--help']);
    expect(help.stdout).toMatch(/^neuralupgrade: verified A\/B updates for psyopsOS/);
    // a psyopsOS disk image inside the root: an apply writes its slot (mke2fs, debugfs)
    // and ESP (mtools), status reads them back, all with the root's own tools
    const rig = new UpgradeRig('node-runtime');
    try {
      copyFileSync(await rig.image(), join(root, 'disk.img'));
      copyFileSync(rig.pubkeyPath, join(root, 'pub'));
      const os = await rig.ostar('20250101-000000');
      copyFileSync(os, join(root, 'os.tar'));
      copyFileSync(`${os}.minisig`, join(root, 'os.tar.minisig'));
      const esp = await rig.esptar('20250101-000000');
      copyFileSync(esp.path, join(root, 'esp.tar'));
      copyFileSync(`${esp.path}.minisig`, join(root, 'esp.tar.minisig'));
    } finally {
      rig.cleanup();
    }
    const g = ['--disk', '/disk.img', '--pubkey', '/pub'];
    const applied = await inRoot(['/usr/sbin/neuralupgrade', ...g, 'apply', 'a', 'efisys', '--os-tar', '/os.tar', '--esp-tar', '/esp.tar', '--default', 'A']);
    expect(applied.stdout).toContain('psyopsOS-A: version 20250101-000000 written and verified');
    const st = await inRoot(['/usr/sbin/neuralupgrade', ...g, 'status', '--verify']);
    expect(st.stdout).toMatch(/^psyopsOS-A: version 20250101-000000 \(verified\)/m);
    expect(st.stdout).toMatch(/^ESP: version 20250101-000000, bootable/m);
    const bytes = statSync(join(root, 'usr/glibc-compat/bin/bun')).size;
    const {stdout: prefix} = await run('du', ['-sb', join(root, 'usr/glibc-compat/lib')]);
    console.log(
      `runtime in the root: usr/glibc-compat/bin/bun ${(bytes / 1048576).toFixed(1)} MiB + usr/glibc-compat/lib ${(Number(prefix.split('\t')[0]) / 1048576).toFixed(1)} MiB; node -e through unshare+chroot ${startMs.toFixed(0)} ms`,
    );
  });
});
