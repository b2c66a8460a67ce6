import {createHash} from 'node:crypto';
import {copyFileSync, readFileSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {directoryEntries, writeTar} from '../src/image/tar.js';
import {installEsp} from '../src/upgrade/apply-esp.js';
import {installOs} from '../src/upgrade/apply-os.js';
import {markGood, readStatus, setDefault} from '../src/upgrade/control.js';
import {FatVolume} from '../src/upgrade/esp-fs.js';
import {verifyLocal} from '../src/upgrade/fetch-update.js';
import {apply, type ApplyTarget, type UpgradeContext} from '../src/upgrade/neuralupgrade.js';
import {openImage, type Place} from '../src/upgrade/place.js';
import {generateKeyPair, parsePublicKey, type PublicKey} from '../src/sign/keys.js';
import {EPOCH, UpgradeRig} from './helpers/upgrade-rig.js';

const OS = {kind: 'os', arch: 'x86_64'} as const;
const ESP = {kind: 'esp', arch: 'x86_64-uefi'} as const;
const V1 = '20250101-000000';
const V2 = '20250202-000000';

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/**
 * Every class of refusal, with an OS and an ESP update asked for together: the whole disk
 * image (GPT, ESP, secret partition, both slots) is byte-identical afterwards, whichever
 * of the two is refused and whatever the reason.
 */
describe('a refused update changes nothing', () => {
  let rig: UpgradeRig;
  let pubkey: PublicKey;
  let base: string;
  let goodOs: string;
  let goodEsp: string;
  let n = 0;

  beforeAll(async () => {
    rig = new UpgradeRig('upgrade-untouched');
    pubkey = parsePublicKey(readFileSync(rig.pubkeyPath, 'utf8'));
    base = await rig.image('base.img');
    const place = await openImage(base);
    await installEsp(place, await verifyLocal((await rig.esptar(V1, {dir: join(rig.dir, 'v1')})).path, {target: ESP, pubkey}, {tmpRoot: rig.dir}), {
      sourceDateEpoch: EPOCH,
      defaultSlot: 'A',
    });
    await installOs(place, 'A', await verifyLocal(await rig.ostar(V1, {dir: join(rig.dir, 'v1')}), {target: OS, pubkey}, {tmpRoot: rig.dir}), {
      tryOnce: false,
      sourceDateEpoch: EPOCH,
    });
    await setDefault(place, 'A', {pubkey});
    await markGood(place, {slot: 'A', pubkey});
    goodOs = await rig.ostar(V2, {dir: join(rig.dir, 'good')});
    goodEsp = (await rig.esptar(V2, {dir: join(rig.dir, 'good')})).path;
  });
  afterAll(() => rig.cleanup());

  async function setup(prepare?: (place: Place) => Promise<void>): Promise<{place: Place; img: string; before: string; dir: string}> {
    n++;
    const img = join(rig.dir, `u${n}.img`);
    copyFileSync(base, img);
    const place: Place = {...(await openImage(img)), booted: 'A'};
    await prepare?.(place);
    return {place, img, before: sha(img), dir: join(rig.dir, `case${n}`)};
  }

  function ctx(place: Place): UpgradeContext {
    return {place, pubkey, osTarget: OS, espTarget: ESP, tmpDir: rig.dir, sourceDateEpoch: EPOCH};
  }

  async function refusedUntouched(
    place: Place,
    img: string,
    before: string,
    req: {targets?: ApplyTarget[]; osTar: string; espTar: string},
    code: string,
    message: RegExp,
  ): Promise<void> {
    const err = await apply(ctx(place), {targets: req.targets ?? ['nonbooted', 'efisys'], osTar: req.osTar, espTar: req.espTar}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'expected a refusal').toBeDefined();
    expect(err).toMatchObject({name: 'PsyError', code});
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
    // no staging folder in what the user reads
    expect((err as Error).message).not.toMatch(/neuralupgrade-[A-Za-z0-9]{6}/);
    expect(sha(img), 'every partition of the image must be unchanged').toBe(before);
  }

  it('applies OS and ESP together when both are good (control)', async () => {
    const {place, img, before} = await setup();
    const r = await apply(ctx(place), {targets: ['nonbooted', 'efisys'], osTar: goodOs, espTar: goodEsp});
    expect(r.slots).toEqual([{slot: 'B', version: V2}]);
    expect(r.esp?.version).toBe(V2);
    expect(sha(img)).not.toBe(before);
  });

  it('an OS tarball bigger than the slot, with an ESP update', async () => {
    const {place, img, before, dir} = await setup();
    const big = await rig.ostar(V2, {dir, bytes: 26 << 20});
    await refusedUntouched(
      place,
      img,
      before,
      {osTar: big, espTar: goodEsp},
      'partition-too-small',
      new RegExp(`^${big.replace(/[.]/g, '\\.')} \\(.* MiB unpacked\\) does not fit slot psyopsOS-B \\(24 MiB\\)$`),
    );
  });

  it('an ESP without room for the new files beside the old ones, with an OS update', async () => {
    const {place, img, before} = await setup(async (p) => {
      const esp = new FatVolume(p.esp.path, p.esp.offset, EPOCH);
      const {free} = await esp.space();
      await esp.write('/FILLER.BIN', Buffer.alloc(free - 256 * 1024));
    });
    await refusedUntouched(
      place,
      img,
      before,
      {osTar: goodOs, espTar: goodEsp},
      'esp-full',
      /psyopsESP\.x86_64-uefi\.20250202-000000\.tar needs \d+ bytes free on the ESP, it has \d+/,
    );
  });

  it('an OS signature from another key', async () => {
    const {place, img, before, dir} = await setup();
    const tar = await rig.ostar(V2, {dir, unsigned: true});
    await rig.sign(tar, {type: 'psyopsOS', filename: `psyopsOS.x86_64.${V2}.tar`, version: V2, architecture: 'x86_64'}, {keys: generateKeyPair()});
    await refusedUntouched(place, img, before, {osTar: tar, espTar: goodEsp}, 'key-mismatch', /signed by key/);
  });

  it('ESP bytes that differ from the signed ones', async () => {
    const {place, img, before, dir} = await setup();
    const tar = join(dir + '.esp.tar');
    const bytes = readFileSync(goodEsp);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 1;
    writeFileSync(tar, bytes);
    copyFileSync(`${goodEsp}.minisig`, `${tar}.minisig`);
    await refusedUntouched(place, img, before, {osTar: goodOs, espTar: tar}, 'bad-signature', /does not match its signature/);
  });

  it('OS metadata for another architecture', async () => {
    const {place, img, before, dir} = await setup();
    const tar = await rig.ostar(V2, {dir, fields: {architecture: 'aarch64'}});
    await refusedUntouched(place, img, before, {osTar: tar, espTar: goodEsp}, 'wrong-architecture', /architecture is aarch64/);
  });

  it('an ESP version that is not newer than the installed one', async () => {
    const {place, img, before} = await setup();
    await refusedUntouched(place, img, before, {osTar: goodOs, espTar: join(rig.dir, 'v1', `psyopsESP.x86_64-uefi.${V1}.tar`)}, 'downgrade', /not above/);
  });

  it('an OS tarball with a member that does not belong', async () => {
    const {place, img, before, dir} = await setup();
    const tar = await rig.ostar(V2, {dir, extraEntries: [{type: 'data', path: 'etc/shadow', mode: 0o600, data: Buffer.from('root::0')}]});
    await refusedUntouched(place, img, before, {osTar: tar, espTar: goodEsp}, 'bad-tarball', /unexpected member "etc\/shadow"/);
  });

  it('an ESP tarball with a member that does not belong', async () => {
    const {place, img, before, dir} = await setup();
    const tar = `${dir}.psyopsESP.x86_64-uefi.${V2}.tar`;
    const entries = await directoryEntries(join(rig.dir, `esp-tree-${V2}`));
    await writeTar(tar, [...entries, {type: 'data', path: 'startup.nsh', mode: 0o644, data: Buffer.from('fs0:\\evil.efi')}], EPOCH);
    await rig.sign(tar, {type: 'psyopsESP', filename: `psyopsESP.x86_64-uefi.${V2}.tar`, version: V2, platform: 'x86_64-uefi'});
    await refusedUntouched(place, img, before, {osTar: goodOs, espTar: tar}, 'bad-tarball', /unexpected member "startup\.nsh"/);
  });

  it('an OS tarball shorter than its signature says', async () => {
    const {place, img, before, dir} = await setup();
    const tar = await rig.ostar(V2, {dir});
    writeFileSync(tar, readFileSync(tar).subarray(0, 20_000));
    await refusedUntouched(place, img, before, {osTar: tar, espTar: goodEsp}, 'truncated-download', /is 20000 bytes, the signature says/);
  });

  it('the booted slot as the target, with an ESP update', async () => {
    const {place, img, before} = await setup();
    await refusedUntouched(place, img, before, {targets: ['a', 'efisys'], osTar: goodOs, espTar: goodEsp}, 'busy', /psyopsOS-A is the booted slot/);
    // and the ESP alone still goes through afterwards
    await apply(ctx(place), {targets: ['efisys'], espTar: goodEsp});
    expect((await readStatus(place)).esp.version).toBe(V2);
  });
});
