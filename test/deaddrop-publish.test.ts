import {lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {publishToReplica, type PublishArtifact} from '../src/deaddrop/index.js';
import {readTarFileMembers} from '../src/tar/index.js';
import {generateKeyPair, parseTrustedComment, verifyFile, type KeyPair} from '../src/sign/index.js';
import {makeApkRepo, makeEsptar, makeOstar} from './helpers/deaddrop-fixtures.js';

let dir: string;
let root: string;
let keys: KeyPair;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-publish-'));
  root = join(dir, 'replica');
  keys = generateKeyPair();
});
afterEach(() => {
  rmSync(dir, {recursive: true, force: true});
});

const at = (iso: string): Date => new Date(iso);

function artifacts(): PublishArtifact[] {
  return [
    {kind: 'psyopsOS', id: 'x86_64', path: join(dir, 'psyopsOS.tar'), source: 'ostar', fields: {architecture: 'x86_64'}},
    {kind: 'psyopsESP', id: 'x86_64-uefi', path: join(dir, 'psyopsESP.tar'), source: 'esptar'},
  ];
}

async function publish(now: string, extra: {keep?: number; apk?: string; keys?: KeyPair} = {}) {
  const k = extra.keys ?? keys;
  return publishToReplica({
    root,
    artifacts: artifacts(),
    keep: extra.keep ?? 3,
    secretKey: k.secretKey,
    publicKey: k.publicKey,
    now: at(now),
    apkRepository: extra.apk,
  });
}

const osDir = (): string[] => readdirSync(join(root, 'os')).sort();

describe('publishing into the replica', () => {
  it('lays out versioned tarballs, signatures and latest links with full trusted comments', async () => {
    makeOstar(join(dir, 'psyopsOS.tar'), 'one', {kernel: '6.6.36-0-lts', alpine: '3.21'});
    makeEsptar(join(dir, 'psyopsESP.tar'), 'one');
    const r = await publish('2025-04-21T10:20:30Z');
    expect(r.artifacts.map((a) => [a.kind, a.version, a.changed])).toEqual([
      ['psyopsOS', '20250421-102030', true],
      ['psyopsESP', '20250421-102030', true],
    ]);
    expect(osDir()).toEqual([
      'psyopsESP.x86_64-uefi.20250421-102030.tar',
      'psyopsESP.x86_64-uefi.20250421-102030.tar.minisig',
      'psyopsESP.x86_64-uefi.latest.tar.minisig',
      'psyopsOS.x86_64.20250421-102030.tar',
      'psyopsOS.x86_64.20250421-102030.tar.minisig',
      'psyopsOS.x86_64.latest.tar.minisig',
    ]);
    const link = join(root, 'os', 'psyopsOS.x86_64.latest.tar.minisig');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('psyopsOS.x86_64.20250421-102030.tar.minisig');
    const tar = join(root, 'os', 'psyopsOS.x86_64.20250421-102030.tar');
    const v = await verifyFile(tar, keys.publicKey);
    const f = parseTrustedComment(v.trustedComment);
    expect(f).toEqual({
      type: 'psyopsOS',
      filename: 'psyopsOS.x86_64.20250421-102030.tar',
      version: '20250421-102030',
      kernel: '6.6.36-0-lts',
      alpine: '3.21',
      architecture: 'x86_64',
      size: String(readFileSync(tar).length),
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const esp = parseTrustedComment((await verifyFile(join(root, 'os', 'psyopsESP.x86_64-uefi.20250421-102030.tar'), keys.publicKey)).trustedComment);
    expect(esp).toMatchObject({type: 'psyopsESP', platform: 'x86_64-uefi', version: '20250421-102030'});
    expect(esp).not.toHaveProperty('efi_programs');
    // an ESP tarball with a psyops manifest.json names its EFI programs
    const {execFileSync} = await import('node:child_process');
    mkdirSync(join(dir, 'esp2'));
    writeFileSync(
      join(dir, 'esp2', 'manifest.json'),
      JSON.stringify({version: 1, extra_programs: {'/tcshell.efi': 'UEFI Shell', '/memtest64.efi': 'MemTest86'}}),
    );
    execFileSync('tar', ['-cf', join(dir, 'psyopsESP.tar'), '-C', join(dir, 'esp2'), 'manifest.json']);
    const r2 = await publish('2025-04-22T00:00:00Z');
    const esp2 = parseTrustedComment(
      (await verifyFile(join(root, 'os', `psyopsESP.x86_64-uefi.${r2.artifacts[1]!.version}.tar`), keys.publicKey)).trustedComment,
    );
    expect(esp2['efi_programs']).toBe('memtest64.efi,tcshell.efi');
    expect((await readTarFileMembers(tar, ['kernel.version'], {what: tar, code: 'bad-artifact'})).get('kernel.version')?.toString()).toBe('6.6.36-0-lts\n');
  });

  it('makes no new version for unchanged artifacts, a newer one for changed ones', async () => {
    makeOstar(join(dir, 'psyopsOS.tar'), 'one');
    makeEsptar(join(dir, 'psyopsESP.tar'), 'one');
    await publish('2025-04-21T10:00:00Z');
    const before = osDir();
    const again = await publish('2025-04-21T11:00:00Z');
    expect(again.artifacts.every((a) => !a.changed && a.version === '20250421-100000')).toBe(true);
    expect(osDir()).toEqual(before);

    makeOstar(join(dir, 'psyopsOS.tar'), 'two');
    // a clock that went backwards still yields a newer version
    const changed = await publish('2025-04-21T09:00:00Z');
    expect(changed.artifacts.map((a) => [a.kind, a.changed, a.version])).toEqual([
      ['psyopsOS', true, '20250421-100001'],
      ['psyopsESP', false, '20250421-100000'],
    ]);
    expect(readlinkSync(join(root, 'os', 'psyopsOS.x86_64.latest.tar.minisig'))).toBe('psyopsOS.x86_64.20250421-100001.tar.minisig');
    // a different signing key re-signs the same content as a new version
    const other = generateKeyPair();
    const resigned = await publish('2025-04-21T12:00:00Z', {keys: other});
    expect(resigned.artifacts.every((a) => a.changed)).toBe(true);
  });

  it('prunes to keep N versions and never removes what latest names', async () => {
    makeEsptar(join(dir, 'psyopsESP.tar'), 'esp');
    for (let i = 0; i < 5; i++) {
      makeOstar(join(dir, 'psyopsOS.tar'), `v${i}`);
      await publish(`2025-01-0${i + 1}T00:00:00Z`, {keep: 2});
    }
    const os = osDir().filter((n) => n.startsWith('psyopsOS.x86_64.2'));
    expect(os).toEqual([
      'psyopsOS.x86_64.20250104-000000.tar',
      'psyopsOS.x86_64.20250104-000000.tar.minisig',
      'psyopsOS.x86_64.20250105-000000.tar',
      'psyopsOS.x86_64.20250105-000000.tar.minisig',
    ]);
    // latest pointing at an old version (e.g. rolled back by hand) survives pruning
    const link = join(root, 'os', 'psyopsOS.x86_64.latest.tar.minisig');
    rmSync(link);
    const {symlinkSync} = await import('node:fs');
    symlinkSync('psyopsOS.x86_64.20250104-000000.tar.minisig', link);
    makeOstar(join(dir, 'psyopsOS.tar'), 'v5');
    const r = await publish('2025-01-06T00:00:00Z', {keep: 1});
    expect(r.pruned).toContain('os/psyopsOS.x86_64.20250105-000000.tar');
    expect(osDir().filter((n) => n.startsWith('psyopsOS.x86_64.2'))).toEqual([
      'psyopsOS.x86_64.20250106-000000.tar',
      'psyopsOS.x86_64.20250106-000000.tar.minisig',
    ]);
    // the ESP never changed: its only version stays
    expect(osDir().filter((n) => n.startsWith('psyopsESP') && n.endsWith('.tar'))).toHaveLength(1);
  });

  it('mirrors the APK repository: packages, then the index, then removals', async () => {
    makeOstar(join(dir, 'psyopsOS.tar'), 'one');
    makeEsptar(join(dir, 'psyopsESP.tar'), 'one');
    const repo = join(dir, 'apkrepo');
    makeApkRepo(repo, {'psyopsOS-base-1.0-r0.apk': 'a', 'neuralupgrade-1.0-r0.apk': 'b'});
    const steps: string[] = [];
    const r1 = await publishToReplica({
      root,
      artifacts: artifacts(),
      keep: 3,
      secretKey: keys.secretKey,
      publicKey: keys.publicKey,
      apkRepository: repo,
      onStep: (s) => void steps.push(s),
    });
    expect(r1.apk.copied).toEqual([
      'apk/v3.21/psyopsOS/x86_64/neuralupgrade-1.0-r0.apk',
      'apk/v3.21/psyopsOS/x86_64/psyopsOS-base-1.0-r0.apk',
      'apk/v3.21/psyopsOS/x86_64/APKINDEX.tar.gz',
    ]);
    expect(steps.indexOf('apk:packages')).toBeLessThan(steps.indexOf('apk:index'));
    rmSync(repo, {recursive: true});
    makeApkRepo(repo, {'psyopsOS-base-1.1-r0.apk': 'a2', 'neuralupgrade-1.0-r0.apk': 'b'});
    const r2 = await publish('2030-01-01T00:00:00Z', {apk: repo});
    expect(r2.apk.copied).toEqual(['apk/v3.21/psyopsOS/x86_64/psyopsOS-base-1.1-r0.apk', 'apk/v3.21/psyopsOS/x86_64/APKINDEX.tar.gz']);
    expect(r2.apk.removed).toEqual(['apk/v3.21/psyopsOS/x86_64/psyopsOS-base-1.0-r0.apk']);
    expect(readdirSync(join(root, 'apk', 'v3.21', 'psyopsOS', 'x86_64')).sort()).toEqual([
      'APKINDEX.tar.gz',
      'neuralupgrade-1.0-r0.apk',
      'psyopsOS-base-1.1-r0.apk',
    ]);
  });

  it('cleans what a killed publish left behind and refuses bad input with clear errors', async () => {
    makeOstar(join(dir, 'psyopsOS.tar'), 'one');
    makeEsptar(join(dir, 'psyopsESP.tar'), 'one');
    await publish('2025-01-01T00:00:00Z');
    // leftovers: scratch file, and a tarball whose signature was never written
    writeFileSync(join(root, 'os', '.psy-tmp-abc-psyopsOS.x86_64.20250102-000000.tar'), 'partial');
    writeFileSync(join(root, 'os', 'psyopsOS.x86_64.20250102-000000.tar'), 'unsigned');
    await publish('2025-01-03T00:00:00Z');
    expect(osDir().some((n) => n.includes('20250102') || n.startsWith('.psy-tmp'))).toBe(false);

    // an ostar without kernel.version and no configured kernel
    const {execFileSync} = await import('node:child_process');
    mkdirSync(join(dir, 'bare'));
    writeFileSync(join(dir, 'bare', 'squashfs'), 'x');
    execFileSync('tar', ['-cf', join(dir, 'psyopsOS.tar'), '-C', join(dir, 'bare'), 'squashfs']);
    await expect(publish('2025-01-04T00:00:00Z')).rejects.toThrow(/ostar: .* has no kernel.version member and no 'kernel' field/);
    rmSync(join(dir, 'psyopsOS.tar'));
    await expect(publish('2025-01-04T00:00:00Z')).rejects.toThrow(/ostar: .*psyopsOS.tar is not a file/);
    // nothing changed by the failed attempts
    expect(readlinkSync(join(root, 'os', 'psyopsOS.x86_64.latest.tar.minisig'))).toBe('psyopsOS.x86_64.20250101-000000.tar.minisig');
  });

  it('lets one writer at a time use the replica, and takes over the lock of a dead one', async () => {
    makeOstar(join(dir, 'psyopsOS.tar'), 'one');
    makeEsptar(join(dir, 'psyopsESP.tar'), 'one');
    const {spawn} = await import('node:child_process');
    const holder = spawn('sleep', ['30']);
    try {
      mkdirSync(root, {recursive: true});
      writeFileSync(join(root, '.psy-lock'), `${holder.pid} psy deaddrop forcepull\n`);
      await expect(publish('2025-01-01T00:00:00Z')).rejects.toMatchObject({
        code: 'locked',
        message: `the replica ${root} is in use by psy deaddrop forcepull (pid ${holder.pid})`,
      });
    } finally {
      holder.kill();
    }
    await new Promise((ok) => holder.once('exit', ok));
    const r = await publish('2025-01-01T00:00:00Z');
    expect(r.artifacts.every((a) => a.changed)).toBe(true);
    expect(readdirSync(root)).not.toContain('.psy-lock');
  });
});
