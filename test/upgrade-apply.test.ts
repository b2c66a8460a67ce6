import {execFileSync} from 'node:child_process';
import {createHash, randomBytes} from 'node:crypto';
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {GRUBENV_MIRROR_PATH, GRUBENV_PATH} from '../src/boot/grub-cfg.js';
import {formatGrubEnv, readGrubEnvTolerant} from '../src/boot/grubenv.js';
import {buildDiskImage, psyopsPartitions} from '../src/disk/index.js';
import {extractTar} from '../src/image/tar.js';
import {installEsp} from '../src/upgrade/apply-esp.js';
import {installOs} from '../src/upgrade/apply-os.js';
import {markGood, readStatus, setDefault, versionFloor} from '../src/upgrade/control.js';
import {FatVolume} from '../src/upgrade/esp-fs.js';
import {verifyLocal} from '../src/upgrade/fetch-update.js';
import {openImage, type Place} from '../src/upgrade/place.js';
import {checkSlotFiles, makeSlotFs} from '../src/upgrade/slot-fs.js';
import {parsePublicKey} from '../src/sign/keys.js';
import {EPOCH, UpgradeRig} from './helpers/upgrade-rig.js';

const OS = {kind: 'os', arch: 'x86_64'} as const;
const ESP = {kind: 'esp', arch: 'x86_64-uefi'} as const;

describe('apply to a disk image', () => {
  let rig: UpgradeRig;
  beforeEach(() => {
    rig = new UpgradeRig('upgrade-apply');
  });
  afterEach(() => rig.cleanup());

  it('installs ESP and A, tries B once, and mark-good makes B the default', async () => {
    const img = await rig.image();
    const place = await openImage(img);
    const pubkey = parsePublicKey(readFileSync(rig.pubkeyPath, 'utf8'));
    const esptar = await rig.esptar('20250101-000000');
    const os1 = await rig.ostar('20250101-000000');
    // the real minisign accepts what src/sign made
    expect(execFileSync('minisign', ['-V', '-p', rig.pubkeyPath, '-m', os1], {encoding: 'utf8'})).toMatch(/Signature and comment signature verified/);

    await installEsp(place, await verifyLocal(esptar.path, {target: ESP, pubkey}, {tmpRoot: rig.dir}), {sourceDateEpoch: EPOCH, defaultSlot: 'A'});
    await installOs(place, 'A', await verifyLocal(os1, {target: OS, pubkey}, {tmpRoot: rig.dir}), {tryOnce: false, sourceDateEpoch: EPOCH});
    await setDefault(place, 'A', {pubkey});
    await markGood(place, {slot: 'A', pubkey});

    let st = await readStatus(place, {pubkey, verifyContent: true});
    expect(st.slots.A.condition).toBe('verified');
    expect(st.slots.A.version).toBe('20250101-000000');
    expect(st.slots.B.condition).toBe('incomplete'); // formatted, no OS recorded
    expect(st.esp.bootable).toBe(true);
    expect(st.esp.grubDir).toBe(esptar.grubDir);
    expect(st.esp.version).toBe('20250101-000000');
    expect(st.nextBoot.boots).toBe('A');
    expect(st.env.highWaterMark).toBe('20250101-000000');
    expect(await versionFloor(place)).toBe('20250101-000000');

    // a node booted from A applies v2 to B and tries it once
    const os2 = await rig.ostar('20250202-000000');
    const live: Place = {...place, booted: 'A'};
    await installOs(live, 'B', await verifyLocal(os2, {target: OS, pubkey, floor: '20250101-000000'}, {tmpRoot: rig.dir}), {
      tryOnce: true,
      sourceDateEpoch: EPOCH,
    });
    st = await readStatus(place, {pubkey, verifyContent: true});
    expect(st.slots.B.condition).toBe('verified');
    expect(st.nextBoot).toMatchObject({boots: 'B', knownGood: 'A', trySpent: true});
    // if B never reaches mark-good, the boot after that is A again
    expect(st.bootAfterThat).toMatchObject({boots: 'A', tryRequested: undefined});

    // B booted and healthy: mark-good
    await markGood({...place, booted: 'B'}, {pubkey});
    st = await readStatus(place, {pubkey});
    expect(st.nextBoot).toMatchObject({boots: 'B', knownGood: 'B', tryRequested: undefined});
    expect(st.env.highWaterMark).toBe('20250202-000000');
    // both copies of the env block agree, and grub-editenv reads ours
    const esp = new FatVolume(place.esp.path, place.esp.offset);
    for (const p of [GRUBENV_PATH, GRUBENV_MIRROR_PATH]) {
      expect(readGrubEnvTolerant((await esp.read(p))!)?.get('psyopsos_default')).toBe('psyopsOS-B');
    }
  });

  it('reads every byte of each slot file back and compares it with the unpacked member', async () => {
    const place = await openImage(await rig.image());
    const region = place.slots.B;
    const src = join(rig.dir, 'slot-src');
    mkdirSync(src);
    // over 1 MiB and not a whole number of blocks: several read chunks and a partial last block
    const data = randomBytes(3 * 1024 * 1024 + 1234);
    writeFileSync(join(src, 'squashfs'), data);
    writeFileSync(join(src, 'kernel'), '');
    await makeSlotFs(region, {label: 'psyopsOS-B', sourceDir: src, sourceDateEpoch: EPOCH});

    const check = async (hostData: Buffer) => {
      const host = join(rig.dir, 'host');
      writeFileSync(host, hostData);
      return (await checkSlotFiles(region, [{name: 'squashfs', hostFile: host}])).get('squashfs');
    };
    expect(await check(data)).toEqual({sha256: createHash('sha256').update(data).digest('hex'), size: data.length, same: true});
    const flipped = Buffer.from(data);
    flipped[2 * 1024 * 1024 + 7]! ^= 1;
    expect((await check(flipped))?.same).toBe(false);
    expect((await check(Buffer.concat([data, Buffer.from([0])])))?.same).toBe(false);
    expect((await check(data.subarray(0, data.length - 1)))?.same).toBe(false);
    const empty = await checkSlotFiles(region, [{name: 'kernel', hostFile: join(src, 'kernel')}, {name: 'missing'}]);
    expect(empty.get('kernel')).toMatchObject({size: 0, same: true});
    expect(empty.get('missing')).toBeUndefined();
  });

  it('takes over an image laid out by the diskimg rule (unsigned slots, env block in the ESP tree)', async () => {
    const pubkey = parsePublicKey(readFileSync(rig.pubkeyPath, 'utf8'));
    // as rules/diskimg.ts does: the esptar unpacked plus both env copies, the ostar unpacked into A and B
    const esptar = await rig.esptar('20250101-000000');
    const espDir = join(rig.dir, 'esp-unpacked');
    const osDir = join(rig.dir, 'os-unpacked');
    await extractTar(esptar.path, espDir);
    const env = formatGrubEnv({psyopsos_default: 'psyopsOS-A'});
    writeFileSync(join(espDir, 'grubenv'), env);
    writeFileSync(join(espDir, 'grubenv.mirror'), env);
    await extractTar(await rig.ostar('20250101-000000'), osDir);
    const img = join(rig.dir, 'diskimg.img');
    await buildDiskImage(img, {
      seed: 'diskimg',
      epoch: EPOCH,
      partitions: psyopsPartitions({espMiB: 40, secretMiB: 4, slotMiB: 24}, {esp: {dir: espDir}, a: {dir: osDir}, b: {dir: osDir}}),
    });
    const place = {...(await openImage(img)), booted: 'A' as const};
    let st = await readStatus(place, {pubkey});
    expect(st.esp).toMatchObject({bootable: true, grubDir: esptar.grubDir});
    expect(st.slots.A).toMatchObject({condition: 'incomplete', detail: 'no version record'});
    expect(st.nextBoot.boots).toBe('A');
    // the first boot's health check passes: mark-good works without a record
    expect(await markGood(place, {pubkey})).toEqual({slot: 'A', version: undefined});
    // and the node updates as usual, ESP included
    const os2 = await rig.ostar('20250202-000000');
    await installOs(place, 'B', await verifyLocal(os2, {target: OS, pubkey, floor: await versionFloor(place)}, {tmpRoot: rig.dir}), {
      tryOnce: true,
      sourceDateEpoch: EPOCH,
    });
    const esp2 = await rig.esptar('20250202-000000');
    await installEsp(place, await verifyLocal(esp2.path, {target: ESP, pubkey}, {tmpRoot: rig.dir}), {sourceDateEpoch: EPOCH});
    st = await readStatus(place, {pubkey, verifyContent: true});
    expect(st.esp).toMatchObject({bootable: true, grubDir: esp2.grubDir, version: '20250202-000000'});
    expect(st.slots.B.condition).toBe('verified');
    expect(st.nextBoot).toMatchObject({boots: 'B', knownGood: 'A', trySpent: true});
    expect(await markGood({...place, booted: 'B'}, {pubkey})).toEqual({slot: 'B', version: '20250202-000000'});
    expect((await readStatus(place)).env.highWaterMark).toBe('20250202-000000');
  });
});
