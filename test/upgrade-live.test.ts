import {execFile} from 'node:child_process';
import {writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {bootedSlotFromCmdline} from '../src/upgrade/place.js';
import {repoRoot} from './helpers/shared-data.js';
import {UpgradeRig} from './helpers/upgrade-rig.js';

const exec = promisify(execFile);
const bin = join(repoRoot, 'bin', 'neuralupgrade.js');

/**
 * The live-node path: partitions found by label under a device directory, each a whole
 * "device" at offset 0 (plain files here: no root, no block devices), the booted slot
 * from a kernel command line file.
 */
describe('live node (devices by label, booted slot from the command line)', () => {
  let rig: UpgradeRig;
  let dev: string;
  let cmdline: string;

  beforeAll(async () => {
    await exec('npm', ['run', 'build'], {cwd: repoRoot});
    rig = new UpgradeRig('upgrade-live');
    ({dev, cmdline} = await rig.freshLiveNode({slotBytes: 24 << 20, cmdline: 'BOOT_IMAGE=/kernel ro psyopsos=psyopsOS-A console=ttyS0,115200 panic=10\n'}));
  });
  afterAll(() => rig?.cleanup());

  it('reads the booted slot from psyopsos= only', () => {
    expect(bootedSlotFromCmdline('ro psyopsos=psyopsOS-B console=ttyS0')).toBe('B');
    expect(bootedSlotFromCmdline('psyopsos=psyopsOS-A')).toBe('A');
    expect(bootedSlotFromCmdline('root=/dev/sda xpsyopsos=psyopsOS-B')).toBeUndefined();
    expect(bootedSlotFromCmdline('psyopsos=psyopsOS-C')).toBeUndefined();
  });

  it('applies to nonbooted, tries it once, and mark-good from the new slot', async () => {
    const g = ['--dev', dev, '--cmdline', cmdline, '--pubkey', rig.pubkeyPath];
    const v2 = await rig.ostar('20250202-000000');
    let r = await exec(process.execPath, [bin, 'apply', 'nonbooted', '--os-tar', v2, ...g]);
    expect(r.stdout).toContain('psyopsOS-B: version 20250202-000000 written and verified');
    expect(r.stdout).toContain('next boot tries psyopsOS-B once');
    r = await exec(process.execPath, [bin, 'status', '--json', '--verify', ...g]);
    const st = JSON.parse(r.stdout);
    expect(st.booted).toBe('A');
    expect(st.slots.B).toMatchObject({condition: 'verified', version: '20250202-000000'});
    expect(st.nextBoot).toMatchObject({boots: 'B', knownGood: 'A', trySpent: true});

    // writing the booted slot is refused, and so is the known-good one while on trial
    const own = await exec(process.execPath, [bin, 'apply', 'a', '--os-tar', v2, ...g]).catch((e: {code: number; stderr: string}) => e);
    expect(own).toMatchObject({code: 1, stderr: 'neuralupgrade apply: psyopsOS-A is the booted slot; apply to the other one (nonbooted)\n'});
    writeFileSync(cmdline, 'ro psyopsos=psyopsOS-B panic=10\n');
    const v3 = await rig.ostar('20250303-000000');
    const trial = await exec(process.execPath, [bin, 'apply', 'nonbooted', '--os-tar', v3, ...g]).catch((e: {code: number; stderr: string}) => e);
    expect(trial).toMatchObject({code: 1});
    expect((trial as {stderr: string}).stderr).toMatch(/psyopsOS-A is the known-good default slot; .*mark-good first/);

    r = await exec(process.execPath, [bin, 'mark-good', ...g]);
    expect(r.stdout).toBe('psyopsOS-B (version 20250202-000000) is the default; high-water mark 20250202-000000\n');
    r = await exec(process.execPath, [bin, 'apply', 'nonbooted', '--os-tar', v3, ...g]);
    expect(r.stdout).toContain('psyopsOS-A: version 20250303-000000 written and verified');
  });
});
