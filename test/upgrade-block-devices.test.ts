import {execFile, execFileSync, spawnSync} from 'node:child_process';
import {existsSync, mkdirSync, openSync, closeSync, readFileSync, symlinkSync, writeFileSync, writeSync} from 'node:fs';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {installEsp} from '../src/upgrade/apply-esp.js';
import {installOs} from '../src/upgrade/apply-os.js';
import {markGood, readStatus, setDefault} from '../src/upgrade/control.js';
import {verifyLocal} from '../src/upgrade/fetch-update.js';
import {openLive, type Place} from '../src/upgrade/place.js';
import {parsePublicKey, type PublicKey} from '../src/sign/keys.js';
import {repoRoot} from './helpers/shared-data.js';
import {EPOCH, UpgradeRig} from './helpers/upgrade-rig.js';

const exec = promisify(execFile);
const bin = join(repoRoot, 'bin', 'neuralupgrade.js');
const OS = {kind: 'os', arch: 'x86_64'} as const;

/**
 * Loop devices need root and a loop driver. A developer's unprivileged machine skips this
 * file; CI (CI=true) runs as root with loop devices, so there their absence is a failure.
 */
function canUseLoopDevices(): boolean {
  const usable =
    process.getuid?.() === 0 && existsSync('/dev/loop-control') && spawnSync('losetup', ['--version'], {stdio: 'ignore'}).status === 0;
  if (!usable && process.env['CI'] === 'true') throw new Error('CI needs root and loop devices for the block-device tests');
  return usable;
}

/**
 * The live-node path on real block devices: each partition is a loop device over its own
 * file, found through `--dev DIR/disk/by-partlabel`, written with the same code as an
 * image. The page cache of a block device is the kernel's, so this is where a read-back
 * could be answered from cached writes instead of the disk.
 */
describe.skipIf(!canUseLoopDevices())('live node on block devices (loop devices)', () => {
  let rig: UpgradeRig;
  let dev: string;
  let cmdline: string;
  let pubkey: PublicKey;
  const loops: string[] = [];
  /** partition label → the file behind its loop device */
  const backing = new Map<string, string>();

  beforeAll(async () => {
    await exec('npm', ['run', 'build'], {cwd: repoRoot});
    rig = new UpgradeRig('upgrade-blockdev');
    pubkey = parsePublicKey(readFileSync(rig.pubkeyPath, 'utf8'));
    dev = join(rig.dir, 'dev');
    const parts = join(rig.dir, 'parts');
    mkdirSync(join(dev, 'disk', 'by-partlabel'), {recursive: true});
    mkdirSync(parts);
    const make = (label: string, size: number, mk: (f: string) => void) => {
      const f = join(parts, label);
      execFileSync('truncate', ['-s', String(size), f]);
      mk(f);
      const loop = execFileSync('losetup', ['--find', '--show', f], {encoding: 'utf8'}).trim();
      loops.push(loop);
      backing.set(label, f);
      symlinkSync(loop, join(dev, 'disk', 'by-partlabel', label));
    };
    make('PSYOPSOSEFI', 40 << 20, (f) => execFileSync('mkfs.vfat', ['-F', '32', '-n', 'PSYOPSOSEFI', f], {stdio: 'ignore'}));
    for (const s of ['A', 'B']) make(`psyopsOS-${s}`, 32 << 20, (f) => execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', `psyopsOS-${s}`, f]));
    cmdline = join(rig.dir, 'cmdline');
    writeFileSync(cmdline, 'ro psyopsos=psyopsOS-A panic=10\n');
    const live = await openLive({devDir: dev, cmdlinePath: cmdline});
    expect(live.slots.B.path).toMatch(/^\/dev\/loop\d+$/);
    const setup = {...live, kind: 'image' as const, booted: undefined};
    await installEsp(setup, await verifyLocal((await rig.esptar('20250101-000000')).path, {target: {kind: 'esp', arch: 'x86_64-uefi'}, pubkey}, {tmpRoot: rig.dir}), {
      sourceDateEpoch: EPOCH,
      defaultSlot: 'A',
    });
    await installOs(setup, 'A', await verifyLocal(await rig.ostar('20250101-000000', {bytes: 3 << 20}), {target: OS, pubkey}, {tmpRoot: rig.dir}), {tryOnce: false, sourceDateEpoch: EPOCH});
    await setDefault(setup, 'A', {pubkey});
    await markGood(setup, {slot: 'A', pubkey});
  }, 120_000);
  afterAll(() => {
    for (const l of loops) spawnSync('losetup', ['--detach', l]);
    rig?.cleanup();
  });

  it('applies to the nonbooted device and verifies it (big members written straight to their blocks)', async () => {
    const g = ['--dev', dev, '--cmdline', cmdline, '--pubkey', rig.pubkeyPath];
    const v2 = await rig.ostar('20250202-000000', {bytes: 3 << 20});
    const r = await exec(process.execPath, [bin, 'apply', 'nonbooted', '--os-tar', v2, ...g]);
    expect(r.stdout).toContain('psyopsOS-B: version 20250202-000000 written and verified');
    const st = JSON.parse((await exec(process.execPath, [bin, 'status', '--json', '--verify', ...g])).stdout);
    expect(st.slots.B).toMatchObject({condition: 'verified', version: '20250202-000000'});
    expect(st.nextBoot).toMatchObject({boots: 'B', knownGood: 'A'});
    // the filesystem on the device is clean
    const fsck = spawnSync('e2fsck', ['-fn', backing.get('psyopsOS-B')!], {encoding: 'utf8'});
    expect(fsck.status, fsck.stdout).toBe(0);
  }, 60_000);

  it('reads back what the disk holds, not the cached writes: bytes lost under the cache fail the apply', async () => {
    const place: Place = {...(await openLive({devDir: dev, cmdlinePath: cmdline})), booted: 'A'};
    // start from a state where B may be written: A is the default and nothing is on trial
    await setDefault({...place, kind: 'image'}, 'A', {pubkey, force: true});
    const update = await verifyLocal(await rig.ostar('20250303-000000', {bytes: 3 << 20}), {target: OS, pubkey, allowDowngrade: true}, {tmpRoot: rig.dir});
    const file = backing.get('psyopsOS-B')!;
    // another opener of the device (udev, a monitor) keeps the kernel from dropping the
    // device's cache when neuralupgrade closes it
    const holder = openSync(place.slots.B.path, 'r');
    const err = await installOs(place, 'B', update, {
      tryOnce: true,
      sourceDateEpoch: EPOCH,
      beforeStep: (_n, name) => {
        if (name !== 'read-back') return;
        // the disk loses a block of squashfs after the flush; the kernel's cache of the
        // device still holds what was written
        const ex = execFileSync('debugfs', ['-R', 'ex /squashfs', file], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']});
        const leaf = /^\s*\d+\/\s*\d+\s+\d+\/\s*\d+\s+\d+\s+-\s+\d+\s+(\d+)\s+-/m.exec(ex);
        expect(leaf, ex).not.toBeNull();
        const fd = openSync(file, 'r+');
        writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, (Number(leaf![1]) + 1) * 4096);
        closeSync(fd);
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    closeSync(holder);
    await update.cleanup();
    expect(err).toMatchObject({name: 'PsyError', code: 'slot-verify-failed'});
    expect((err as Error).message).toMatch(/psyopsOS-B: squashfs read back differs/);
    // nothing was recorded or tried: the next boot is the known-good A
    const st = await readStatus(place, {pubkey});
    expect(st.slots.B.condition).not.toBe('verified');
    expect(st.nextBoot.boots).toBe('A');
  }, 60_000);
});
