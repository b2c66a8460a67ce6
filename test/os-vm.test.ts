import {spawnSync} from 'node:child_process';
import {mkdir, mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {buildEspTree} from '../src/boot/esp-tree.js';
import {buildDiskImage, psyopsPartitions} from '../src/disk/index.js';
import {bootAndWatch, cleanConsole} from '../src/vm/boot-watch.js';
import {qemuArgs} from '../src/vm/qemu.js';
import {repoRoot} from './helpers/shared-data.js';
import {rmSync, writeFileSync} from 'node:fs';
import {psy} from './helpers/deaddrop-cli.js';
import {nodeProject} from './helpers/node-project.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'psy-vm-'));
});
afterEach(async () => {
  await rm(dir, {recursive: true, force: true});
});

describe('QEMU command line and console handling', () => {
  it('boots q35 + OVMF from a virtio disk in snapshot mode unless told to write', () => {
    const args = qemuArgs({image: '/x/disk.img', serial: {kind: 'file', path: '/x/log'}}, 'tcg');
    expect(args.join(' ')).toContain('-machine q35 -accel tcg -cpu max');
    expect(args).toContain('file=/x/disk.img,format=raw,if=virtio,snapshot=on');
    expect(args).toContain('file:/x/log');
    expect(args[args.indexOf('-bios') + 1]).toMatch(/OVMF/);
    const rw = qemuArgs({image: '/x/disk.img', snapshot: false, serial: {kind: 'stdio'}}, 'kvm');
    expect(rw).toContain('file=/x/disk.img,format=raw,if=virtio');
    expect(rw.join(' ')).toContain('-accel kvm -cpu host');
    expect(rw.join(' ')).toContain('-serial mon:stdio');
  });

  it("gives the NIC the MAC a node's mactab names, and refuses what is not a unicast MAC", () => {
    const base = {image: '/x/disk.img', serial: {kind: 'file', path: '/x/log'}} as const;
    const args = qemuArgs({...base, mac: '52:54:00:AB:CD:EF'}, 'tcg');
    expect(args[args.indexOf('-nic') + 1]).toBe('user,model=virtio-net-pci,mac=52:54:00:ab:cd:ef');
    expect(() => qemuArgs({...base, mac: '52:54:00:ab:cd'}, 'tcg')).toThrow(/"52:54:00:ab:cd" is not a MAC address/);
    expect(() => qemuArgs({...base, mac: '01:00:5e:00:00:01'}, 'tcg')).toThrow(/multicast/);
    expect(() => qemuArgs({...base, mac: '52:54:00:ab:cd:ef', noNetwork: true}, 'tcg')).toThrow(/off the network/);
  });

  it('psy vm --mac refuses a bad address in one line before anything boots', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin/psy.js'), 'vm', '--mac', 'zz:54:00:ab:cd:ef', join(dir, 'none.img')], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--mac: "zz:54:00:ab:cd:ef" is not a MAC address');
  });

  it("psy vm --node NAME gives the NIC that node's MAC from nodes/NAME/node.json; --mac overrides; an unknown node is one line", async () => {
    const p = nodeProject('psy-vm-node-');
    try {
      expect((await psy(['node', 'new', 'vmnode', '--mac', '52:54:00:AB:00:07'], p.dir, p.env)).code).toBe(0);
      writeFileSync(join(p.dir, 'node.img'), Buffer.alloc(1 << 20));
      const nic = (stdout: string) => stdout.trim().split(' ')[stdout.trim().split(' ').indexOf('-nic') + 1];
      const dry = await psy(['vm', '--node', 'vmnode', '--accel', 'tcg', '--dry-run', 'node.img'], p.dir, p.env);
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout.startsWith('qemu-system-x86_64 -machine q35 -accel tcg ')).toBe(true);
      expect(dry.stdout).toContain(`file=${join(p.dir, 'node.img')},format=raw,if=virtio,snapshot=on`);
      expect(nic(dry.stdout)).toBe('user,model=virtio-net-pci,mac=52:54:00:ab:00:07');
      // headless mode keeps the NIC too: the node's psy0 must exist in the VM
      const headless = await psy(['vm', '--node', 'vmnode', '--accel', 'tcg', '--dry-run', '--marker', 'X', 'node.img'], p.dir, p.env);
      expect(nic(headless.stdout)).toBe('user,model=virtio-net-pci,mac=52:54:00:ab:00:07');
      const over = await psy(['vm', '--node', 'vmnode', '--mac', '52:54:00:00:00:99', '--accel', 'tcg', '--dry-run', 'node.img'], p.dir, p.env);
      expect(nic(over.stdout)).toBe('user,model=virtio-net-pci,mac=52:54:00:00:00:99');
      const plain = await psy(['vm', '--accel', 'tcg', '--dry-run', 'node.img'], p.dir, p.env);
      expect(nic(plain.stdout)).toBe('user,model=virtio-net-pci');

      const unknown = await psy(['vm', '--node', 'nosuch', '--accel', 'tcg', '--dry-run', 'node.img'], p.dir, p.env);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toBe("psy vm: unknown node 'nosuch' (no nodes/nosuch/node.json; nodes: vmnode)\n");
      const target = await psy(['vm', 'diskimg@nosuch', '--accel', 'tcg', '--dry-run'], p.dir, p.env);
      expect(target.stderr).toBe("psy vm: unknown node 'nosuch' (no nodes/nosuch/node.json; nodes: vmnode)\n");
      const both = await psy(['vm', 'diskimg@vmnode', '--node', 'other', '--dry-run'], p.dir, p.env);
      expect(both.stderr).toBe('psy vm: --node other and diskimg@vmnode name different nodes\n');
    } finally {
      rmSync(p.dir, {recursive: true, force: true});
    }
  });

  it('strips CR and ANSI escapes from serial output', () => {
    expect(cleanConsole("\x1b[2J\x1b[01;01HBooting `psyopsOS-A'\r\n\x1b[0m\x1b[37m\x1b[40mok\r\n")).toBe("Booting `psyopsOS-A'\nok\n");
  });
});

describe('boot harness fails fast', () => {
  // An ESP whose GRUB finds no grub.cfg stops at a `grub>` prompt: a real boot failure.
  async function imageWithoutGrubCfg(): Promise<string> {
    const esp = join(dir, 'esp');
    const tree = await buildEspTree({outDir: esp, sourceDateEpoch: 1700000000});
    rmSync(join(esp, tree.grubDir, 'grub.cfg'));
    writeFileSync(join(esp, tree.grubDir, 'note.txt'), 'no grub.cfg here\n');
    const img = join(dir, 'disk.img');
    await mkdir(join(dir, 'empty'));
    await buildDiskImage(img, {seed: 'vm', epoch: 1700000000, partitions: psyopsPartitions({espMiB: 40, secretMiB: 8, slotMiB: 8}, {esp: {dir: esp}})});
    return img;
  }

  it('on a GRUB prompt, quoting the console, long before the timeout', async () => {
    const img = await imageWithoutGrubCfg();
    const t0 = Date.now();
    const err = (await bootAndWatch({image: img, accel: 'tcg', logFile: join(dir, 'console.log'), marker: /PSYOPSOS-BOOTED/, timeoutMs: 170_000}).catch(
      (e: unknown) => e,
    )) as Error;
    expect(err).toMatchObject({code: 'boot-failed'});
    expect(err.message).toContain('grub>');
    expect(err.message).not.toContain('\n');
    expect(Date.now() - t0).toBeLessThan(120_000);
  }, 200_000);

  it('psy vm --marker reports the failed boot as one line and a non-zero exit', async () => {
    const build = spawnSync('npm', ['run', 'build'], {cwd: repoRoot, encoding: 'utf8'});
    expect(build.status, build.stderr).toBe(0);
    const img = await imageWithoutGrubCfg();
    const r = spawnSync(
      process.execPath,
      [join(repoRoot, 'bin/psy.js'), 'vm', '--accel', 'tcg', '--marker', 'PSYOPSOS-BOOTED', '--timeout', '170', '--log', join(dir, 'c.log'), img],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    );
    expect(r.status).not.toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/boot of .*disk\.img failed \(\^grub> \)/);
  }, 240_000);
});
