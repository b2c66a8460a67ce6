import {execFile} from 'node:child_process';
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {gzipSync} from 'node:zlib';
import {cpioArchive} from '../../src/image/cpio.js';
import {repoRoot} from './shared-data.js';

const run = promisify(execFile);

/**
 * A real Debian kernel (linux-image-*-cloud-amd64, fetched with apt-get download and
 * cached under cache/test-kernel) for boot tests of the A/B scheme.
 */
export async function testKernel(): Promise<Buffer> {
  const dir = join(repoRoot, 'cache', 'test-kernel');
  mkdirSync(dir, {recursive: true});
  const cached = join(dir, 'vmlinuz');
  if (existsSync(cached)) return readFileSync(cached);
  const {stdout} = await run('apt-cache', ['depends', 'linux-image-cloud-amd64']);
  const m = /Depends: (linux-image-[0-9][^\s]*-cloud-amd64)/.exec(stdout);
  if (!m) throw new Error(`cannot find the versioned cloud kernel in: ${stdout}`);
  let deb = readdirSync(dir).find((f) => f.startsWith(`${m[1]}_`) && f.endsWith('.deb'));
  if (!deb) {
    await run('apt-get', ['download', m[1]!], {cwd: dir, maxBuffer: 1 << 24});
    deb = readdirSync(dir).find((f) => f.startsWith(`${m[1]}_`) && f.endsWith('.deb'))!;
  }
  const x = mkdtempSync(join(dir, 'x-'));
  try {
    await run('dpkg-deb', ['-x', join(dir, deb), x]);
    const boot = join(x, 'boot');
    const vmlinuz = readdirSync(boot).find((f) => f.startsWith('vmlinuz-'))!;
    const data = readFileSync(join(boot, vmlinuz));
    await run('cp', [join(boot, vmlinuz), cached]);
    return data;
  } finally {
    rmSync(x, {recursive: true, force: true});
  }
}

/**
 * An initramfs whose init reports which slot the kernel came from (psyopsos= on its
 * command line) and the version baked into it, then powers off; or, when `panic`, exits
 * so the kernel panics (a broken update).
 */
export function testInitramfs(version: string, panic = false): Buffer {
  const busybox = readFileSync('/bin/busybox');
  const init = [
    '#!/bin/busybox sh',
    '/bin/busybox mount -t proc proc /proc',
    '/bin/busybox mount -t devtmpfs dev /dev',
    'slot=$(/bin/busybox sed -n "s/.*psyopsos=psyopsOS-\\([AB]\\).*/\\1/p" /proc/cmdline)',
    panic ? `echo "PSYOPS-BROKEN side=$slot version=${version}" >/dev/ttyS0` : `echo "PSYOPS-BOOT-OK side=$slot version=${version} " >/dev/ttyS0`,
    panic ? 'exit 1' : '/bin/busybox poweroff -f',
    '',
  ].join('\n');
  const archive = cpioArchive(
    [
      {type: 'dir', path: 'bin', mode: 0o755},
      {type: 'dir', path: 'dev', mode: 0o755},
      {type: 'dir', path: 'proc', mode: 0o755},
      {type: 'char', path: 'dev/console', mode: 0o600, major: 5, minor: 1},
      {type: 'file', path: 'bin/busybox', mode: 0o755, data: busybox},
      {type: 'file', path: 'init', mode: 0o755, data: Buffer.from(init)},
    ],
    1_700_000_000,
  );
  return gzipSync(archive, {level: 6});
}
