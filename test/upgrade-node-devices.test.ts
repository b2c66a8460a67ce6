import {execFileSync} from 'node:child_process';
import {chmodSync, mkdirSync, readdirSync, readlinkSync, renameSync, statSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';
import {runNeuralupgrade, UpgradeRig} from './helpers/upgrade-rig.js';

const nu = runNeuralupgrade;

/**
 * How a node finds its partitions without udev (the psyopsOS root runs busybox mdev: no
 * /dev/disk): by GPT name in sysfs, then `blkid -L`, with busybox's blkid, which exits
 * 0 and prints nothing for a label it does not know.
 */
describe.skipIf(!haveAlpineTestData())('partitions of a node without /dev/disk', () => {
  let rig: UpgradeRig;
  let dev: string;
  let cmdline: string;
  let sys: string;
  let busyboxPath: string;
  const savedPath = process.env['PATH'];

  beforeAll(async () => {
    rig = new UpgradeRig('upgrade-node-devices');
    ({dev, cmdline} = await rig.freshLiveNode({slotBytes: 24 << 20, cmdline: 'ro psyopsos=psyopsOS-A panic=10\n'}));
    // as the kernel shows partitions: /sys/class/block/<name>/{uevent,size}, devices /dev/<name>
    sys = join(rig.dir, 'sys');
    const byPartlabel = join(dev, 'disk', 'by-partlabel');
    readdirSync(byPartlabel).forEach((label, i) => {
      const name = `vda${i + 1}`;
      const file = readlinkSync(join(byPartlabel, label));
      renameSync(file, join(dev, name));
      mkdirSync(join(sys, 'class', 'block', name), {recursive: true});
      writeFileSync(
        join(sys, 'class', 'block', name, 'uevent'),
        `MAJOR=253\nMINOR=${i + 1}\nDEVNAME=${name}\nDEVTYPE=partition\nPARTN=${i + 1}\nPARTNAME=${label}\n`,
      );
      writeFileSync(join(sys, 'class', 'block', name, 'size'), `${statSync(join(dev, name)).size / 512}\n`);
    });
    renameSync(join(dev, 'disk'), join(rig.dir, 'no-disk'));
    // Alpine's own busybox (from the minirootfs), run as `blkid` first on PATH
    const alpine = join(rig.dir, 'alpine');
    mkdirSync(alpine);
    execFileSync('tar', [
      '-xzf',
      join(alpineTestData, 'minirootfs', 'alpine-minirootfs-3.20.3-x86_64.tar.gz'),
      '-C',
      alpine,
      './bin/busybox',
      './lib/ld-musl-x86_64.so.1',
    ]);
    busyboxPath = join(rig.dir, 'busybox-bin');
    mkdirSync(busyboxPath);
    writeFileSync(join(busyboxPath, 'blkid'), `#!/bin/sh\nexec "${alpine}/lib/ld-musl-x86_64.so.1" "${alpine}/bin/busybox" blkid "$@"\n`);
    chmodSync(join(busyboxPath, 'blkid'), 0o755);
    process.env['PATH'] = `${busyboxPath}:${savedPath}`;
  });
  afterAll(() => {
    process.env['PATH'] = savedPath;
    rig?.cleanup();
  });

  it("busybox's blkid says nothing and exits 0 for an unknown label", () => {
    expect(execFileSync('blkid', ['-L', 'psyopsOS-A'], {encoding: 'utf8'})).toBe('');
  });

  it('finds the slots and the ESP by GPT name in sysfs', async () => {
    const r = await nu(['status', '--dev', dev, '--sys', sys, '--cmdline', cmdline, '--pubkey', rig.pubkeyPath]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^psyopsOS-A: version 20250101-000000 \(installed\) \[booted, default, next boot\]$/m);
    expect(r.stdout).toMatch(/^ESP: version 20250101-000000, bootable/m);
  });

  it('says which label it could not find, in one line', async () => {
    const r = await nu(['status', '--dev', dev, '--sys', join(rig.dir, 'no-sys'), '--cmdline', cmdline, '--pubkey', rig.pubkeyPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `neuralupgrade status: no partition labelled psyopsOS-A (looked in ${dev}/disk/by-partlabel, ${dev}/disk/by-label, ${join(rig.dir, 'no-sys')}/class/block and blkid -L)\n`,
    );
  });
});
