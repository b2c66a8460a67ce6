import {execFileSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {copyFileSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync} from 'node:fs';
import {open, writeFile} from 'node:fs/promises';
import {dirname, join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {installEsp} from '../src/upgrade/apply-esp.js';
import {installOs} from '../src/upgrade/apply-os.js';
import {markGood, readStatus, setDefault} from '../src/upgrade/control.js';
import {receiveVerified, verifyLocal} from '../src/upgrade/fetch-update.js';
import {apply, type UpgradeContext} from '../src/upgrade/neuralupgrade.js';
import {openImage, type Place} from '../src/upgrade/place.js';
import {LocalRepository} from '../src/upgrade/repository.js';
import {parsePublicKey, type PublicKey} from '../src/sign/keys.js';
import {verifyTrustedComment} from '../src/sign/signature.js';
import {parseTrustedComment} from '../src/sign/trusted-comment.js';
import {checkMeta} from '../src/upgrade/update-meta.js';
import {TarUnpacker, memberBytes} from '../src/upgrade/tar.js';
import {writeTar} from '../src/image/tar.js';
import {EPOCH, UpgradeRig} from './helpers/upgrade-rig.js';

const OS = {kind: 'os', arch: 'x86_64'} as const;
const ESP = {kind: 'esp', arch: 'x86_64-uefi'} as const;
const V1 = '20250101-000000';
const V2 = '20250202-000000';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const shaFile = (f: string) => sha(readFileSync(f));

/** The member hashes of a version as UpgradeRig made them. */
function contentHashes(version: string): Record<string, string> {
  return Object.fromEntries(Object.entries(UpgradeRig.osContent(version)).map(([k, v]) => [k, sha(v)]));
}

describe('a tarball is read once: what is installed is what was verified', () => {
  let rig: UpgradeRig;
  let pubkey: PublicKey;
  let base: string;
  let n = 0;

  beforeAll(async () => {
    rig = new UpgradeRig('upgrade-single-read');
    pubkey = parsePublicKey(readFileSync(rig.pubkeyPath, 'utf8'));
    base = await rig.image('base.img');
    const place = await openImage(base);
    const setupTmp = join(rig.dir, 'setup-tmp');
    mkdirSync(setupTmp);
    const esp = await verifyLocal((await rig.esptar(V1)).path, {target: ESP, pubkey}, {tmpRoot: setupTmp});
    await installEsp(place, esp, {sourceDateEpoch: EPOCH, defaultSlot: 'A'});
    const os = await verifyLocal(await rig.ostar(V1, {dir: join(rig.dir, 'v1')}), {target: OS, pubkey}, {tmpRoot: setupTmp});
    await installOs(place, 'A', os, {tryOnce: false, sourceDateEpoch: EPOCH});
    await esp.cleanup();
    await os.cleanup();
    await setDefault(place, 'A', {pubkey});
    await markGood(place, {slot: 'A', pubkey});
  });
  afterAll(() => rig.cleanup());

  /** A copy of the prepared image booted from A, and an empty folder for staging. */
  async function setup(): Promise<{place: Place; img: string; tmp: string; repoDir: string}> {
    n++;
    const img = join(rig.dir, `s${n}.img`);
    copyFileSync(base, img);
    const tmp = join(rig.dir, `tmp${n}`);
    mkdirSync(tmp);
    return {place: {...(await openImage(img)), booted: 'A'}, img, tmp, repoDir: join(rig.dir, `repo${n}`)};
  }

  function ctx(place: Place, tmpDir: string, repoDir?: string): UpgradeContext {
    return {place, pubkey, osTarget: OS, espTarget: ESP, tmpDir, sourceDateEpoch: EPOCH, ...(repoDir ? {repository: new LocalRepository(repoDir)} : {})};
  }

  it('opens a local tarball exactly once and stages it privately', async () => {
    const {tmp, repoDir} = await setup();
    const tar = await rig.ostar(V2, {dir: repoDir});
    const opened: string[] = [];
    const update = await verifyLocal(
      tar,
      {target: OS, pubkey},
      {
        tmpRoot: tmp,
        openTar: (p) => {
          opened.push(p);
          return open(p, 'r');
        },
      },
    );
    try {
      expect(opened).toEqual([tar]);
      const stage = dirname(update.contentDir);
      expect(dirname(stage)).toBe(tmp);
      expect(statSync(stage).mode & 0o777).toBe(0o700);
      expect(update.members.map((m) => m.name).sort()).toEqual(Object.keys(UpgradeRig.osContent(V2)).sort());
      for (const m of update.members) expect(sha(memberBytes(m))).toBe(contentHashes(V2)[m.name]);
      expect(update.tarPath).toBeUndefined();
    } finally {
      await update.cleanup();
    }
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('installs the verified bytes although the file is changed in place after verification', async () => {
    const {place, tmp, repoDir} = await setup();
    const tar = await rig.ostar(V2, {dir: repoDir});
    const signed = readFileSync(tar);
    // the same layout and size with other content: what a second read would have found
    const evil = await rig.ostar(V2, {dir: join(rig.dir, `evil${n}`), members: UpgradeRig.osContent('20990101-000000'), unsigned: true});
    const evilBytes = readFileSync(evil);
    expect(evilBytes.length).toBe(signed.length);
    let swapped = false;
    await apply(ctx(place, tmp), {
      targets: ['nonbooted'],
      osTar: tar,
      tryOnce: true,
      afterVerify: async () => {
        // overwrite the very file (same inode) the apply opened, then replace its name too
        const fh = await open(tar, 'r+');
        await fh.write(evilBytes, 0, evilBytes.length, 0);
        await fh.close();
        renameSync(evil, tar);
        swapped = true;
      },
    });
    expect(swapped).toBe(true);
    expect(shaFile(tar)).toBe(sha(evilBytes));
    const st = await readStatus(place, {pubkey, verifyContent: true});
    expect(st.slots.B.condition).toBe('verified');
    expect(st.slots.B.version).toBe(V2);
    expect(Object.fromEntries(st.slots.B.manifest!.members.map((m) => [m.name, m.sha256]))).toEqual(contentHashes(V2));
    expect(readdirSync(tmp), 'staging removed after the apply').toEqual([]);
  });

  it('applies from a pipe, which can only be read once', async () => {
    const {place, tmp, repoDir} = await setup();
    const tar = await rig.ostar(V2, {dir: repoDir});
    const fifo = join(rig.dir, `pipe${n}.tar`);
    execFileSync('mkfifo', [fifo]);
    copyFileSync(`${tar}.minisig`, `${fifo}.minisig`);
    // the writer opens the pipe once and writes the tarball once; a second open by the
    // reader would wait for a writer that never comes
    const writer = writeFile(fifo, readFileSync(tar));
    const r = await apply(ctx(place, tmp), {targets: ['nonbooted'], osTar: fifo, tryOnce: true});
    await writer;
    expect(r.slots).toEqual([{slot: 'B', version: V2}]);
    const st = await readStatus(place, {pubkey, verifyContent: true});
    expect(st.slots.B.condition).toBe('verified');
    expect(Object.fromEntries(st.slots.B.manifest!.members.map((m) => [m.name, m.sha256]))).toEqual(contentHashes(V2));
    expect(st.nextBoot.boots).toBe('B');
  }, 30_000);

  it('a bad signature leaves the slots untouched and no staging behind', async () => {
    const {place, img, tmp, repoDir} = await setup();
    const tar = await rig.ostar(V2, {dir: repoDir});
    const bytes = readFileSync(tar);
    bytes[bytes.length - 2048] = bytes[bytes.length - 2048]! ^ 1; // late in the file: after members were staged
    writeFileSync(tar, bytes);
    const before = shaFile(img);
    for (const req of [{osTar: tar}, {osVersion: V2}]) {
      const err = await apply(ctx(place, tmp, repoDir), {targets: ['nonbooted'], ...req}).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toMatchObject({name: 'PsyError', code: 'bad-signature'});
      expect((err as Error).message).toMatch(/signature verification failed: the file does not match its signature/);
      expect((err as Error).message).not.toContain('\n');
      expect(shaFile(img), 'the image must be unchanged').toBe(before);
      expect(readdirSync(tmp), 'the staging folder must be gone').toEqual([]);
    }
  });

  it('reports a bad signature before what the unverified bytes say about their names', async () => {
    const {place, img, tmp, repoDir} = await setup();
    const tar = await rig.ostar(V2, {dir: repoDir, extraEntries: [{type: 'data', path: '../escape', mode: 0o644, data: Buffer.from('x')}]});
    const bytes = readFileSync(tar);
    bytes[600] = bytes[600]! ^ 1;
    writeFileSync(tar, bytes);
    const before = shaFile(img);
    const err = await apply(ctx(place, tmp), {targets: ['nonbooted'], osTar: tar}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({name: 'PsyError', code: 'bad-signature'});
    expect(shaFile(img)).toBe(before);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('a signed tarball with a refused name leaves no staging behind', async () => {
    const {place, img, tmp, repoDir} = await setup();
    await rig.ostar(V2, {dir: repoDir, extraEntries: [{type: 'data', path: 'etc/passwd', mode: 0o644, data: Buffer.from('root::0:0')}]});
    const before = shaFile(img);
    const err = await apply(ctx(place, tmp, repoDir), {targets: ['nonbooted'], osVersion: V2}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({name: 'PsyError', code: 'bad-tarball'});
    expect((err as Error).message).toMatch(/unexpected member "etc\/passwd"/);
    expect(shaFile(img)).toBe(before);
    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(repoDir)).toContain(`psyopsOS.x86_64.${V2}.tar`);
  });

  it('unpacks a tarball that arrives in odd-sized pieces the same way', async () => {
    const {tmp, repoDir} = await setup();
    const tar = await rig.ostar(V2, {dir: repoDir});
    const bytes = readFileSync(tar);
    // pieces of 1, 511, 513, 7 and 4096 bytes in turn cross every header and padding boundary
    const sizes = [1, 511, 513, 7, 4096];
    const pieces: Buffer[] = [];
    for (let at = 0, i = 0; at < bytes.length; i++) {
      const len = sizes[i % sizes.length]!;
      pieces.push(bytes.subarray(at, at + len));
      at += len;
    }
    const signatureText = readFileSync(`${tar}.minisig`, 'utf8');
    const fields = parseTrustedComment(verifyTrustedComment(signatureText, pubkey).trustedComment, 'sig');
    const meta = checkMeta(fields, {target: OS, source: 'sig'});
    const update = await receiveVerified(
      (async function* () {
        yield* pieces;
      })(),
      {meta, signatureText, pubkey, what: 'pieces', signatureSource: 'sig', tmpRoot: tmp, size: bytes.length, keepTar: true},
    );
    try {
      for (const m of update.members) expect(sha(memberBytes(m)), m.name).toBe(contentHashes(V2)[m.name]);
      expect(shaFile(update.tarPath!)).toBe(sha(bytes));
    } finally {
      await update.cleanup();
    }
  });
  it("keeps an ostar's big members in memory, not in staging, and installs them from there", async () => {
    const {place, tmp, repoDir} = await setup();
    const big = 3 << 20;
    const tar = await rig.ostar(V2, {dir: repoDir, bytes: big});
    const update = await verifyLocal(tar, {target: OS, pubkey}, {tmpRoot: tmp});
    try {
      const squashfs = update.members.find((m) => m.name === 'squashfs')!;
      expect(squashfs.data?.length).toBe(big);
      expect(squashfs.path).toBeUndefined();
      // not copied: a view of the one buffer the file was read into (shared with the hashing thread)
      expect(squashfs.data!.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(sha(squashfs.data!)).toBe(sha(UpgradeRig.osContent(V2, big).squashfs!));
      expect(readdirSync(update.contentDir)).not.toContain('squashfs');
      expect(update.members.find((m) => m.name === 'kernel')!.path).toBeDefined();
      await installOs(place, 'B', update, {tryOnce: false, sourceDateEpoch: EPOCH});
    } finally {
      await update.cleanup();
    }
    const st = await readStatus(place, {pubkey, verifyContent: true});
    expect(st.slots.B.condition).toBe('verified');
    expect(st.slots.B.manifest!.members.find((m) => m.name === 'squashfs')).toMatchObject({size: big, sha256: sha(UpgradeRig.osContent(V2, big).squashfs!)});
  }, 30_000);

  it('allocates no memory for a member that claims more bytes than the tarball may hold', async () => {
    const {tmp} = await setup();
    const tar = join(tmp, 'claims.tar');
    await writeTar(tar, [{type: 'data', path: 'squashfs', mode: 0o644, data: Buffer.alloc(4096, 1)}], EPOCH);
    const unpacker = new TarUnpacker(tmp, {file: () => true, dir: () => false}, 'claims.tar', {inMemory: () => true, maxMemoryMember: 4095});
    unpacker.write(readFileSync(tar));
    expect(() => unpacker.finish()).toThrow(/claims\.tar: member "squashfs" claims 4096 bytes, more than the 4095 the tarball may hold/);
    expect(readdirSync(tmp)).toEqual(['claims.tar']);
  });
});
