import {createHash} from 'node:crypto';
import {execFileSync} from 'node:child_process';
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {EFI_BOOT_PATH} from '../src/boot/grub-cfg.js';
import {ESP_STEPS, installEsp} from '../src/upgrade/apply-esp.js';
import {OS_STEPS, installOs} from '../src/upgrade/apply-os.js';
import {markGood, readStatus, setDefault} from '../src/upgrade/control.js';
import {FatVolume} from '../src/upgrade/esp-fs.js';
import {verifyLocal, type VerifiedUpdate} from '../src/upgrade/fetch-update.js';
import {openImage, type Place} from '../src/upgrade/place.js';
import {readRegion, writeRegion} from '../src/upgrade/region.js';
import {parsePublicKey, type PublicKey} from '../src/sign/keys.js';
import {EPOCH, UpgradeRig} from './helpers/upgrade-rig.js';

const OS = {kind: 'os', arch: 'x86_64'} as const;
const ESP = {kind: 'esp', arch: 'x86_64-uefi'} as const;
const V1 = '20250101-000000';
const V2 = '20250202-000000';

class PowerCut extends Error {}

function contentHashes(version: string): Record<string, string> {
  const c = UpgradeRig.osContent(version);
  return Object.fromEntries(Object.entries(c).map(([k, v]) => [k, createHash('sha256').update(v).digest('hex')]));
}

/** The slot GRUB would boot now holds, byte for byte, one complete signed OS version. */
async function assertBootsVerifiedSlot(place: Place, pubkey: PublicKey): Promise<{slot: string; version: string}> {
  const st = await readStatus(place, {pubkey, verifyContent: true});
  expect(st.esp.bootable).toBe(true);
  const slot = st.nextBoot.boots;
  expect(slot, st.nextBoot.reason).toBeDefined();
  const state = st.slots[slot!];
  expect(state.condition, `${slot}: ${state.detail ?? ''}`).toBe('verified');
  const want = contentHashes(state.version!);
  expect(Object.fromEntries(state.manifest!.members.map((m) => [m.name, m.sha256]))).toEqual(want);
  return {slot: slot!, version: state.version!};
}

describe('power cut at every write step', () => {
  let rig: UpgradeRig;
  let base: string;
  let pubkey: PublicKey;
  let os2: VerifiedUpdate;
  let esp2: VerifiedUpdate;
  let esp1Efi: Buffer;
  let esp2Efi: Buffer;

  beforeAll(async () => {
    rig = new UpgradeRig('upgrade-fault');
    pubkey = parsePublicKey(readFileSync(rig.pubkeyPath, 'utf8'));
    base = await rig.image('base.img');
    const place = await openImage(base);
    const e1 = await rig.esptar(V1);
    await installEsp(place, await verifyLocal(e1.path, {target: ESP, pubkey}, {tmpRoot: rig.dir}), {sourceDateEpoch: EPOCH, defaultSlot: 'A'});
    await installOs(place, 'A', await verifyLocal(await rig.ostar(V1), {target: OS, pubkey}, {tmpRoot: rig.dir}), {tryOnce: false, sourceDateEpoch: EPOCH});
    await setDefault(place, 'A', {pubkey});
    await markGood(place, {slot: 'A', pubkey});
    esp1Efi = (await new FatVolume(place.esp.path, place.esp.offset).read(EFI_BOOT_PATH))!;
    os2 = await verifyLocal(await rig.ostar(V2), {target: OS, pubkey, floor: V1}, {tmpRoot: rig.dir});
    const e2 = await rig.esptar(V2);
    esp2 = await verifyLocal(e2.path, {target: ESP, pubkey}, {tmpRoot: rig.dir});
    const tree = join(rig.dir, `esp-tree-${V2}`, 'EFI/BOOT/BOOTX64.EFI');
    esp2Efi = readFileSync(tree);
  });
  afterAll(() => rig.cleanup());

  async function freshCopy(name: string): Promise<Place> {
    const img = join(rig.dir, name);
    copyFileSync(base, img);
    return {...(await openImage(img)), booted: 'A'};
  }

  it('the base image boots A with v1', async () => {
    const place = await freshCopy('base-check.img');
    expect(await assertBootsVerifiedSlot(place, pubkey)).toEqual({slot: 'A', version: V1});
  });

  for (let cut = 1; cut <= OS_STEPS.length + 1; cut++) {
    const label = cut <= OS_STEPS.length ? `before OS step ${cut} (${OS_STEPS[cut - 1]})` : 'after the last OS step';
    it(`apply to B, power cut ${label}`, async () => {
      const place = await freshCopy(`os-cut-${cut}.img`);
      const run = installOs(place, 'B', os2, {
        tryOnce: true,
        sourceDateEpoch: EPOCH,
        beforeStep: (n) => {
          if (n === cut) throw new PowerCut(`cut at ${n}`);
        },
      });
      if (cut <= OS_STEPS.length) await expect(run).rejects.toBeInstanceOf(PowerCut);
      else await run;
      const booted = await assertBootsVerifiedSlot(place, pubkey);
      // the new slot is only ever chosen once it is complete and recorded
      expect(booted).toEqual(cut <= OS_STEPS.length ? {slot: 'A', version: V1} : {slot: 'B', version: V2});
      // and if that boot of B dies (panic= reboot), the next boot is A again
      const st = await readStatus(place, {pubkey});
      expect(st.bootAfterThat.boots).toBe('A');
    });
  }

  it('a write torn in the middle of the filesystem never becomes bootable', async () => {
    const place = await freshCopy('os-torn.img');
    await expect(
      installOs(place, 'B', os2, {
        tryOnce: true,
        sourceDateEpoch: EPOCH,
        beforeStep: (n) => {
          if (n === 3) {
            // half the slot gets garbage, the rest never arrives
            const r = place.slots.B;
            writeRegion(r, 1 << 20, Buffer.alloc(r.size / 2 - (1 << 20), 0xa5));
            throw new PowerCut('torn write');
          }
        },
      }),
    ).rejects.toBeInstanceOf(PowerCut);
    expect(await assertBootsVerifiedSlot(place, pubkey)).toEqual({slot: 'A', version: V1});
    expect((await readStatus(place)).slots.B.condition).toBe('empty');
  });

  for (let cut = 1; cut <= ESP_STEPS.length + 1; cut++) {
    const label = cut <= ESP_STEPS.length ? `before ESP step ${cut} (${ESP_STEPS[cut - 1]})` : 'after the last ESP step';
    it(`ESP update, power cut ${label}`, async () => {
      const place = await freshCopy(`esp-cut-${cut}.img`);
      const run = installEsp(place, esp2, {
        sourceDateEpoch: EPOCH,
        beforeStep: (n) => {
          if (n === cut) throw new PowerCut(`cut at ${n}`);
        },
      });
      if (cut <= ESP_STEPS.length) await expect(run).rejects.toBeInstanceOf(PowerCut);
      else await run;
      const esp = new FatVolume(place.esp.path, place.esp.offset);
      const efi = (await esp.read(EFI_BOOT_PATH))!;
      // BOOTX64.EFI is exactly the old or the new one, and its grub directory is complete
      const isNew = efi.equals(esp2Efi);
      expect(isNew || efi.equals(esp1Efi)).toBe(true);
      expect(isNew).toBe(cut > 4);
      const version = isNew ? V2 : V1;
      const tree = join(rig.dir, `esp-tree-${version}`);
      const st = await readStatus(place, {pubkey});
      const cfg = await esp.read(`/${st.esp.grubDir}/grub.cfg`);
      expect(cfg?.equals(readFileSync(join(tree, st.esp.grubDir!, 'grub.cfg')))).toBe(true);
      expect(await assertBootsVerifiedSlot(place, pubkey)).toEqual({slot: 'A', version: V1});
      // the FAT itself is consistent: no cross-linked or lost clusters (fsck.fat, read-only)
      const espCopy = join(rig.dir, `esp-cut-${cut}.fat`);
      writeFileSync(espCopy, readRegion(place.esp, 0, place.esp.size));
      execFileSync('fsck.fat', ['-n', espCopy], {stdio: 'pipe'});
      const grubDirs = (await esp.list('/')).filter((e) => e.startsWith('grub-'));
      if (cut > ESP_STEPS.length) {
        // finished: only the new grub directory is left, the record names the new version
        expect(grubDirs).toEqual([`${st.esp.grubDir}/`]);
        expect(st.esp.version).toBe(V2);
      } else {
        expect(grubDirs).toContain(`${st.esp.grubDir}/`);
      }
    });
  }
});
