import {execFile, execFileSync, spawnSync} from 'node:child_process';
import {existsSync, openSync, closeSync, readFileSync, writeSync} from 'node:fs';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {installOs} from '../src/upgrade/apply-os.js';
import {readStatus, setDefault} from '../src/upgrade/control.js';
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
  const usable = process.getuid?.() === 0 && existsSync('/dev/loop-control') && spawnSync('losetup', ['--version'], {stdio: 'ignore'}).status === 0;
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
    const attach = (f: string, label: string) => {
      const loop = execFileSync('losetup', ['--find', '--show', f], {encoding: 'utf8'}).trim();
      loops.push(loop);
      backing.set(label, f);
      return loop;
    };
    let live: Place;
    ({dev, cmdline, live} = await rig.freshLiveNode({slotBytes: 32 << 20, ostarBytes: 3 << 20, cmdline: 'ro psyopsos=psyopsOS-A panic=10\n', attach}));
    expect(live.slots.B.path).toMatch(/^\/dev\/loop\d+$/);
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
