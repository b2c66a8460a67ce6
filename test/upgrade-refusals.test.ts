import {createHash} from 'node:crypto';
import {copyFileSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {createServer, type Server} from 'node:http';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {installEsp} from '../src/upgrade/apply-esp.js';
import {installOs} from '../src/upgrade/apply-os.js';
import {markGood, readStatus, setDefault} from '../src/upgrade/control.js';
import {FatVolume} from '../src/upgrade/esp-fs.js';
import {downloadVerified, verifyLocal} from '../src/upgrade/fetch-update.js';
import {apply, type UpgradeContext} from '../src/upgrade/neuralupgrade.js';
import {openImage, type Place} from '../src/upgrade/place.js';
import {HttpRepository, LocalRepository, type Repository} from '../src/upgrade/repository.js';
import {generateKeyPair, parsePublicKey, type PublicKey} from '../src/sign/keys.js';
import {EPOCH, UpgradeRig} from './helpers/upgrade-rig.js';

const OS = {kind: 'os', arch: 'x86_64'} as const;
const ESP = {kind: 'esp', arch: 'x86_64-uefi'} as const;
const V1 = '20250101-000000';

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('refusals: nothing is written', () => {
  let rig: UpgradeRig;
  let pubkey: PublicKey;
  let base: string;
  let n = 0;
  let server: Server;
  let serverUrl: string;
  /** file name → how the test HTTP server misbehaves for it */
  const truncate = new Set<string>();

  beforeAll(async () => {
    rig = new UpgradeRig('upgrade-refuse');
    pubkey = parsePublicKey(readFileSync(rig.pubkeyPath, 'utf8'));
    base = await rig.image('base.img');
    const place = await openImage(base);
    await installEsp(place, await verifyLocal((await rig.esptar(V1)).path, {target: ESP, pubkey}, {tmpRoot: rig.dir}), {
      sourceDateEpoch: EPOCH,
      defaultSlot: 'A',
    });
    await installOs(place, 'A', await verifyLocal(await rig.ostar(V1, {dir: join(rig.dir, 'v1')}), {target: OS, pubkey}, {tmpRoot: rig.dir}), {
      tryOnce: false,
      sourceDateEpoch: EPOCH,
    });
    await setDefault(place, 'A', {pubkey});
    await markGood(place, {slot: 'A', pubkey});
    server = createServer((req, res) => {
      const name = decodeURIComponent((req.url ?? '/').split('/').pop() ?? '');
      const repo = join(rig.dir, (req.url ?? '').split('/')[1] ?? '');
      try {
        const link = readlinkSync(join(repo, name));
        res.writeHead(302, {location: link}).end();
        return;
      } catch {
        // not a link
      }
      let data: Buffer;
      try {
        data = readFileSync(join(repo, name));
      } catch {
        res.writeHead(404).end();
        return;
      }
      if (truncate.has(name)) {
        // the connection dies half-way: no content-length, half the bytes
        res.writeHead(200);
        res.end(data.subarray(0, data.length >> 1));
        return;
      }
      res.writeHead(200, {'content-length': data.length}).end(data);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address() as {port: number};
    serverUrl = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rig.cleanup();
  });

  async function setup(): Promise<{place: Place; img: string; repoDir: string; before: string}> {
    n++;
    const img = join(rig.dir, `r${n}.img`);
    copyFileSync(base, img);
    return {place: {...(await openImage(img)), booted: 'A'}, img, repoDir: join(rig.dir, `repo${n}`), before: sha(img)};
  }

  function ctx(place: Place, repository?: Repository): UpgradeContext {
    return {place, pubkey, osTarget: OS, espTarget: ESP, tmpDir: rig.dir, sourceDateEpoch: EPOCH, ...(repository ? {repository} : {})};
  }

  function latest(repoDir: string, version: string): void {
    symlinkSync(`psyopsOS.x86_64.${version}.tar.minisig`, join(repoDir, 'psyopsOS.x86_64.latest.tar.minisig'));
  }

  async function refused(run: Promise<unknown>, code: string, message: RegExp, img: string, before: string): Promise<void> {
    const err = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'expected a refusal').toBeDefined();
    expect(err).toMatchObject({name: 'PsyError', code});
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
    expect(sha(img), 'the image must be unchanged').toBe(before);
  }

  it('accepts a good update over HTTP, latest followed through a redirect (control)', async () => {
    const {place, repoDir} = await setup();
    await rig.ostar('20250202-000000', {dir: repoDir});
    latest(repoDir, '20250202-000000');
    const rel = repoDir.split('/').pop()!;
    const r = await apply(ctx(place, new HttpRepository(`${serverUrl}/${rel}`)), {targets: ['nonbooted'], osVersion: 'latest', tryOnce: true});
    expect(r.slots).toEqual([{slot: 'B', version: '20250202-000000'}]);
    expect((await readStatus(place)).nextBoot.boots).toBe('B');
  });

  it('refuses a signature from another key', async () => {
    const {place, img, repoDir, before} = await setup();
    const tar = await rig.ostar('20250202-000000', {dir: repoDir, unsigned: true});
    await rig.sign(
      tar,
      {type: 'psyopsOS', filename: 'psyopsOS.x86_64.20250202-000000.tar', version: '20250202-000000', architecture: 'x86_64'},
      {keys: generateKeyPair()},
    );
    await refused(apply(ctx(place, new LocalRepository(repoDir)), {targets: ['nonbooted'], osVersion: '20250202-000000'}), 'key-mismatch', /key/i, img, before);
  });

  it('refuses an edited trusted comment', async () => {
    const {place, img, repoDir, before} = await setup();
    const tar = await rig.ostar('20250202-000000', {dir: repoDir});
    const sig = readFileSync(`${tar}.minisig`, 'utf8').replace('kernel=6.6.0-20250202-000000', 'kernel=6.6.0-evil');
    writeFileSync(`${tar}.minisig`, sig);
    await refused(apply(ctx(place), {targets: ['nonbooted'], osTar: tar}), 'bad-signature', /comment|signature/i, img, before);
  });

  it('refuses a tarball whose bytes differ from the signed ones', async () => {
    const {place, img, repoDir, before} = await setup();
    const tar = await rig.ostar('20250202-000000', {dir: repoDir});
    const bytes = readFileSync(tar);
    bytes[600] = bytes[600]! ^ 1;
    writeFileSync(tar, bytes);
    await refused(apply(ctx(place), {targets: ['nonbooted'], osTar: tar}), 'bad-signature', /signature/i, img, before);
  });

  it('refuses an older version, and installs it with --allow-downgrade', async () => {
    const {place, img, repoDir, before} = await setup();
    const tar = await rig.ostar('20241231-000000', {dir: repoDir});
    await refused(apply(ctx(place), {targets: ['nonbooted'], osTar: tar}), 'downgrade', /20241231-000000 is not above .*20250101-000000/, img, before);
    await refused(apply(ctx(place), {targets: ['nonbooted'], osTar: await rig.ostar(V1, {dir: repoDir})}), 'downgrade', /not above/, img, before);
    await apply({...ctx(place), allowDowngrade: true}, {targets: ['nonbooted'], osTar: tar});
    expect((await readStatus(place)).slots.B.version).toBe('20241231-000000');
  });

  it('still refuses an older version when both environment copies are lost', async () => {
    const {place, img, repoDir} = await setup();
    const esp = new FatVolume(place.esp.path, place.esp.offset);
    await esp.overwriteInPlace('/grubenv', Buffer.alloc(1024));
    await esp.overwriteInPlace('/grubenv.mirror', Buffer.alloc(1024));
    expect((await readStatus(place)).env.highWaterMark).toBeUndefined();
    const tar = await rig.ostar('20241231-000000', {dir: repoDir});
    // the booted slot's own record (v1) is the floor now
    await refused(
      apply(ctx(place), {targets: ['nonbooted'], osTar: tar}),
      'downgrade',
      /not above the installed high-water mark 20250101-000000/,
      img,
      sha(img),
    );
  });

  it('refuses the wrong architecture', async () => {
    const {place, img, repoDir, before} = await setup();
    const tar = await rig.ostar('20250202-000000', {dir: repoDir, fields: {architecture: 'aarch64'}});
    await refused(apply(ctx(place), {targets: ['nonbooted'], osTar: tar}), 'wrong-architecture', /architecture is aarch64, this node is x86_64/, img, before);
  });

  it('refuses the wrong type', async () => {
    const {place, img, repoDir, before} = await setup();
    const tar = await rig.ostar('20250202-000000', {dir: repoDir, type: 'psyopsESP'});
    await refused(apply(ctx(place), {targets: ['nonbooted'], osTar: tar}), 'wrong-type', /type is psyopsESP, expected psyopsOS/, img, before);
    // and an OS tarball offered as the ESP
    const os = await rig.ostar('20250303-000000', {dir: repoDir});
    await refused(apply(ctx(place), {targets: ['efisys'], espTar: os}), 'wrong-type', /expected psyopsESP/, img, before);
  });

  it('refuses a signature whose filename does not match its version', async () => {
    const {place, img, repoDir, before} = await setup();
    const tar = await rig.ostar('20250202-000000', {dir: repoDir, fields: {filename: 'psyopsOS.x86_64.20990101-000000.tar'}});
    await refused(apply(ctx(place), {targets: ['nonbooted'], osTar: tar}), 'bad-metadata', /filename .* does not match/, img, before);
  });

  it('refuses an oversized download (more bytes than the signature says)', async () => {
    const {place, img, repoDir, before} = await setup();
    await rig.ostar('20250202-000000', {dir: repoDir, fields: {size: '4096'}});
    latest(repoDir, '20250202-000000');
    const rel = repoDir.split('/').pop()!;
    await refused(
      apply(ctx(place, new HttpRepository(`${serverUrl}/${rel}`)), {targets: ['nonbooted'], osVersion: 'latest'}),
      'oversized-download',
      /larger than the 4096 bytes/,
      img,
      before,
    );
    await refused(
      apply(ctx(place, new LocalRepository(repoDir)), {targets: ['nonbooted'], osVersion: 'latest'}),
      'oversized-download',
      /larger than the 4096 bytes/,
      img,
      before,
    );
  });

  it('refuses a truncated download', async () => {
    const {place, img, repoDir, before} = await setup();
    await rig.ostar('20250202-000000', {dir: repoDir});
    latest(repoDir, '20250202-000000');
    truncate.add('psyopsOS.x86_64.20250202-000000.tar');
    const rel = repoDir.split('/').pop()!;
    await refused(
      apply(ctx(place, new HttpRepository(`${serverUrl}/${rel}`)), {targets: ['nonbooted'], osVersion: 'latest'}),
      'truncated-download',
      /got \d+ bytes, the signature says \d+/,
      img,
      before,
    );
    truncate.clear();
  });

  it('follows redirects only within the repository origin', async () => {
    const {place, img, repoDir, before} = await setup();
    await rig.ostar('20250202-000000', {dir: repoDir});
    const rel = repoDir.split('/').pop()!;
    const name = 'psyopsOS.x86_64.20250202-000000.tar.minisig';
    // the same bytes served from another port of the same host: another origin
    const other = createServer((_req, res) => res.writeHead(200).end(readFileSync(join(repoDir, name))));
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const otherPort = (other.address() as {port: number}).port;
    try {
      for (const [target, shown] of [
        [`http://127.0.0.1:${otherPort}/${rel}/${name}`, `http://127.0.0.1:${otherPort}/`],
        [`file://${repoDir}/${name}`, 'file://'],
        [`https://127.0.0.1:${serverUrl.split(':').pop()}/${rel}/${name}`, 'https://127.0.0.1'],
      ] as const) {
        rmSync(join(repoDir, 'psyopsOS.x86_64.latest.tar.minisig'), {force: true});
        symlinkSync(target, join(repoDir, 'psyopsOS.x86_64.latest.tar.minisig'));
        await refused(
          apply(ctx(place, new HttpRepository(`${serverUrl}/${rel}`)), {targets: ['nonbooted'], osVersion: 'latest'}),
          'bad-redirect',
          new RegExp(`redirects to ${shown.replace(/[.]/g, '\\.')}.*, outside ${serverUrl.replace(/[.]/g, '\\.')}; refused$`),
          img,
          before,
        );
      }
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  it('refuses when there is no latest', async () => {
    const {place, img, repoDir, before} = await setup();
    await rig.ostar('20250202-000000', {dir: repoDir});
    await refused(
      apply(ctx(place, new LocalRepository(repoDir)), {targets: ['nonbooted'], osVersion: 'latest'}),
      'no-latest',
      /no latest psyopsOS for x86_64/,
      img,
      before,
    );
    const rel = repoDir.split('/').pop()!;
    await refused(
      apply(ctx(place, new HttpRepository(`${serverUrl}/${rel}`)), {targets: ['nonbooted'], osVersion: 'latest'}),
      'no-latest',
      /no latest/,
      img,
      before,
    );
  });

  it('refuses a signature without size= for a download that has no other cap', async () => {
    const {img, repoDir, before} = await setup();
    const tar = await rig.ostar('20250202-000000', {dir: repoDir, unsigned: true});
    await rig.sign(
      tar,
      {type: 'psyopsOS', filename: 'psyopsOS.x86_64.20250202-000000.tar', version: '20250202-000000', architecture: 'x86_64'},
      {omitSize: true},
    );
    // apply caps such a download by the slot (test/upgrade-original-signatures); without a cap it is refused
    await refused(downloadVerified(new LocalRepository(repoDir), '20250202-000000', {target: OS, pubkey}, rig.dir), 'bad-metadata', /no size=/, img, before);
  });

  const badTars: Array<[string, Parameters<UpgradeRig['ostar']>[1], RegExp]> = [
    [
      'an unexpected name',
      {extraEntries: [{type: 'data', path: 'etc/passwd', mode: 0o644, data: Buffer.from('root::0:0')}]},
      /unexpected member "etc\/passwd"/,
    ],
    ['an escaping name', {extraEntries: [{type: 'data', path: '../kernel', mode: 0o644, data: Buffer.from('x')}]}, /escaping member name "\.\.\/kernel"/],
    ['an absolute name', {extraEntries: [{type: 'data', path: '/squashfs', mode: 0o644, data: Buffer.from('x')}]}, /escaping member name "\/squashfs"/],
    ['a symlink', {extraEntries: [{type: 'symlink', path: 'modloop', target: '/etc/shadow'}]}, /refusing member "modloop" of tar type '2'/],
    ['a missing kernel', {members: {initramfs: Buffer.from('i'), squashfs: Buffer.from('s')}}, /missing member "kernel"/],
  ];
  for (const [what, opts, message] of badTars) {
    it(`refuses a signed tarball with ${what}`, async () => {
      const {place, img, repoDir, before} = await setup();
      const tar = await rig.ostar('20250202-000000', {dir: repoDir, ...opts});
      await refused(apply(ctx(place), {targets: ['nonbooted'], osTar: tar}), 'bad-tarball', message, img, before);
    });
  }

  it('refuses to write the booted slot or the known-good default', async () => {
    const {place, img, repoDir, before} = await setup();
    const tar = await rig.ostar('20250202-000000', {dir: repoDir});
    await refused(apply(ctx(place), {targets: ['a'], osTar: tar}), 'busy', /psyopsOS-A is the booted slot/, img, before);
  });
});
