import {execFileSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {publishToReplica} from '../../src/deaddrop/publish.js';
import type {KeyPair} from '../../src/sign/keys.js';

/**
 * Writes a small psyopsOS-shaped tarball (kernel.version, squashfs.alpine_version and a
 * payload whose bytes depend on `seed`) with GNU tar, reproducibly.
 */
export function makeOstar(path: string, seed: string, opts: {kernel?: string; alpine?: string; payloadBytes?: number} = {}): void {
  const dir = mkdtempSync(join(tmpdir(), 'psy-ostar-'));
  try {
    writeFileSync(join(dir, 'kernel.version'), `${opts.kernel ?? '6.6.36-0-lts'}\n`);
    writeFileSync(join(dir, 'squashfs.alpine_version'), `${opts.alpine ?? '3.21'}\n`);
    const n = opts.payloadBytes ?? 4096;
    const buf = Buffer.alloc(n);
    for (let i = 0; i < n; i++) buf[i] = (seed.charCodeAt(i % seed.length) + i) & 0xff;
    writeFileSync(join(dir, 'squashfs'), buf);
    execFileSync('tar', [
      '--sort=name',
      '--mtime=@0',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-cf',
      path,
      '-C',
      dir,
      'kernel.version',
      'squashfs',
      'squashfs.alpine_version',
    ]);
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}

export function makeEsptar(path: string, seed: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'psy-esptar-'));
  try {
    mkdirSync(join(dir, 'grub'));
    writeFileSync(join(dir, 'grub', 'grub.cfg'), `# ${seed}\n`);
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-cf', path, '-C', dir, 'grub']);
  } finally {
    rmSync(dir, {recursive: true, force: true});
  }
}

/** An APK-repository-shaped tree (contents are opaque to the deaddrop). */
export function makeApkRepo(dir: string, packages: Record<string, string>): void {
  const arch = join(dir, 'v3.21', 'psyopsOS', 'x86_64');
  mkdirSync(arch, {recursive: true});
  for (const [name, body] of Object.entries(packages)) writeFileSync(join(arch, name), body);
  writeFileSync(join(arch, 'APKINDEX.tar.gz'), `index of ${Object.keys(packages).sort().join(',')}`);
}

/** Publishes one OS tarball into a replica folder, signed with `keys`; returns the version it got. */
export async function publishOs(replica: string, keys: KeyPair, path: string): Promise<string> {
  const r = await publishToReplica({
    root: replica,
    artifacts: [{kind: 'psyopsOS', id: 'x86_64', path, source: 'test', fields: {architecture: 'x86_64'}}],
    keep: 5,
    secretKey: keys.secretKey,
    publicKey: keys.publicKey,
  });
  return r.artifacts[0]!.version;
}
