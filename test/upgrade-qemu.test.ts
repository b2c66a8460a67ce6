import {execFile, spawn} from 'node:child_process';
import {existsSync} from 'node:fs';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {openImage} from '../src/upgrade/place.js';
import {invalidateSlot} from '../src/upgrade/slot-fs.js';
import {bootAndWatch} from '../src/vm/boot-watch.js';
import {repoRoot} from './helpers/shared-data.js';
import {testInitramfs, testKernel} from './helpers/test-boot-payload.js';
import {UpgradeRig} from './helpers/upgrade-rig.js';

const exec = promisify(execFile);
const bin = join(repoRoot, 'bin', 'neuralupgrade.js');
const haveQemu = existsSync('/usr/bin/qemu-system-x86_64') && existsSync('/usr/share/ovmf/OVMF.fd');
// CI installs QEMU and OVMF (scripts/install-deps.sh): there, their absence is a failure.
if (!haveQemu && process.env['CI'] === 'true') throw new Error('qemu-system-x86_64 or OVMF missing: run scripts/install-deps.sh');

/**
 * The A/B scheme booted for real: OVMF, the GRUB built by buildEspTree, the static
 * grub.cfg reading the environment block, a Debian kernel and a tiny init per slot that
 * reports its slot. TCG only (about 15-25 s per boot); the image is written by the VM
 * (GRUB's save_env), so no snapshot.
 */
describe.skipIf(!haveQemu)('A/B updates in QEMU', () => {
  let rig: UpgradeRig;
  let img: string;
  let g: string[];
  let kernel: Buffer;
  let n = 0;

  async function nu(args: string[]): Promise<string> {
    const {stdout} = await exec(process.execPath, [bin, ...args, ...g]);
    return stdout;
  }
  async function ostar(version: string, panic = false): Promise<string> {
    return rig.ostar(version, {
      dir: join(rig.dir, 'os'),
      members: {kernel, initramfs: testInitramfs(version, panic), squashfs: Buffer.from(`squashfs ${version}\n`)},
    });
  }
  async function boot(): Promise<{side: string; version: string}> {
    n++;
    const r = await bootAndWatch({
      image: img,
      snapshot: false,
      accel: 'tcg',
      memoryMiB: 512,
      logFile: join(rig.dir, `boot-${n}.log`),
      marker: /PSYOPS-BOOT-OK side=([AB]) version=(\S+)/,
      timeoutMs: 240_000,
    });
    return {side: r.match[1]!, version: r.match[2]!};
  }
  async function status(
    booted?: string,
  ): Promise<{nextBoot: {knownGood: string; chosen: string; boots?: string; tryRequested?: string}; env: {primary: {vars: Record<string, string>}}}> {
    return JSON.parse(await nu(['status', '--json', ...(booted ? ['--booted', booted] : [])]));
  }

  beforeAll(async () => {
    await exec('npm', ['run', 'build'], {cwd: repoRoot});
    kernel = await testKernel();
    rig = new UpgradeRig('upgrade-qemu');
    img = await rig.image('disk.img', 32);
    g = ['--disk', img, '--pubkey', rig.pubkeyPath];
    const esp = await rig.esptar('20250101-000000', {dir: join(rig.dir, 'os'), timeoutSec: 1, kernelArgs: 'quiet'});
    await nu(['apply', 'a', 'b', 'efisys', '--os-tar', await ostar('20250101-000000'), '--esp-tar', esp.path, '--default', 'A']);
    await nu(['mark-good', '--slot', 'A']);
  }, 600_000);
  afterAll(() => rig?.cleanup());

  it('boots A; tries B once; mark-good; a panicking update falls back; a killed apply boots the default; an unloadable default falls back', async () => {
    expect(await boot()).toEqual({side: 'A', version: '20250101-000000'});

    // the running A applies v2 to B: the next boot tries B, GRUB spends the flag itself
    await nu(['apply', 'nonbooted', '--booted', 'A', '--os-tar', await ostar('20250202-000000')]);
    expect((await status('A')).env.primary.vars['psyopsos_try']).toBe('psyopsOS-B');
    expect(await boot()).toEqual({side: 'B', version: '20250202-000000'});
    let st = await status();
    expect(st.env.primary.vars['psyopsos_try']).toBe('');
    expect(st.nextBoot.knownGood).toBe('A');

    // B is healthy: mark-good makes it the default
    await nu(['mark-good', '--booted', 'B']);
    expect((await status()).nextBoot.knownGood).toBe('B');

    // a broken update to A (its init dies: kernel panic) is tried once, then B boots by itself
    await nu(['apply', 'nonbooted', '--booted', 'B', '--os-tar', await ostar('20250303-000000', true)]);
    await expect(boot()).rejects.toThrow(/Kernel panic/);
    st = await status();
    expect(st.env.primary.vars['psyopsos_try']).toBe('');
    expect(await boot()).toEqual({side: 'B', version: '20250202-000000'});

    // power cut: the apply is killed while it writes the filesystem of A
    const good = await ostar('20250404-000000');
    // its staging folders are left behind like a real power cut's: inside the rig
    const child = spawn(process.execPath, [bin, 'apply', 'nonbooted', '--booted', 'B', '--os-tar', good, '-v', ...g], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {...process.env, TMPDIR: rig.dir},
    });
    await new Promise<void>((resolve) => {
      child.stderr.on('data', (b: Buffer) => {
        // Killed the moment step 3 starts (stderr is written synchronously to a pipe),
        // long before the try-once write of step 7.
        if (b.toString().includes('3/7 write')) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((r) => child.on('close', r));
    expect((await status()).env.primary.vars['psyopsos_try']).toBe('');
    expect(await boot()).toEqual({side: 'B', version: '20250202-000000'});

    // GRUB's fallback: A rewritten completely (no try), then the default B loses its
    // filesystem; the resolver and GRUB both go from B to A
    await nu(['apply', 'nonbooted', '--booted', 'B', '--os-tar', good, '--no-try']);
    invalidateSlot((await openImage(img)).slots.B);
    expect((await status()).nextBoot).toMatchObject({chosen: 'B', boots: 'A'});
    expect(await boot()).toEqual({side: 'A', version: '20250404-000000'});
  }, 900_000);
});
