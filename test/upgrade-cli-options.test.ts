import {createHash} from 'node:crypto';
import {readFileSync, symlinkSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {readRepositoryFile} from '../src/cli/neuralupgrade.js';
import {runNeuralupgrade, UpgradeRig} from './helpers/upgrade-rig.js';

const V1 = '20250101-000000';
const V2 = '20250202-000000';

const nu = runNeuralupgrade;

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('neuralupgrade options as the README writes them', () => {
  let rig: UpgradeRig;
  let img: string;
  let replica: string;

  beforeAll(async () => {
    rig = new UpgradeRig('upgrade-options');
    img = await rig.image();
    replica = join(rig.dir, 'replica');
    await rig.ostar(V2, {dir: replica});
    symlinkSync(`psyopsOS.x86_64.${V2}.tar.minisig`, join(replica, 'psyopsOS.x86_64.latest.tar.minisig'));
  });
  afterAll(() => rig.cleanup());

  it('takes global options before the command', async () => {
    const os1 = await rig.ostar(V1, {dir: join(rig.dir, 'local')});
    const esp1 = await rig.esptar(V1, {dir: join(rig.dir, 'local')});
    let r = await nu(['--disk', img, '--pubkey', rig.pubkeyPath, 'apply', 'a', 'b', 'efisys', '--os-tar', os1, '--esp-tar', esp1.path, '--default', 'A']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`psyopsOS-B: version ${V1} written and verified`);
    r = await nu([`--disk=${img}`, '-v', '--pubkey', rig.pubkeyPath, 'mark-good', '--slot', 'A']);
    expect(r.stdout).toContain(`high-water mark ${V1}`);
    r = await nu(['--disk', img, '--json', 'status', '--pubkey', rig.pubkeyPath]);
    expect(JSON.parse(r.stdout).slots.A.version).toBe(V1);
    // before or after the command alike
    expect((await nu(['status', '--disk', img, '--json', '--pubkey', rig.pubkeyPath])).stdout).toBe(r.stdout);
    r = await nu(['--bogus', 'status']);
    expect(r).toMatchObject({code: 2, stderr: "neuralupgrade: unknown option '--bogus' (see neuralupgrade --help)\n"});
  });

  it('show with a repository works off a node (no psyopsos= and no kernel command line)', async () => {
    const workstation = join(rig.dir, 'workstation-cmdline');
    writeFileSync(workstation, 'BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet\n');
    for (const cmdline of [workstation, join(rig.dir, 'no-such-cmdline')]) {
      const r = await nu(['show', '--repository', replica, '--pubkey', rig.pubkeyPath, '--cmdline', cmdline]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        `repository: local replica ${replica}\n  latest psyopsOS: ${V2} (psyopsOS.x86_64.${V2}.tar)\n  latest psyopsESP: no latest psyopsESP for x86_64-uefi in local replica ${replica} (psyopsESP.x86_64-uefi.latest.tar.minisig is missing)\n`,
      );
    }
    // without a repository there is nothing to show off a node
    const r = await nu(['show', '--pubkey', rig.pubkeyPath, '--cmdline', workstation]);
    expect(r).toMatchObject({code: 1});
    expect(r.stderr).toMatch(/^neuralupgrade show: no psyopsos=psyopsOS-A\|B in .*workstation-cmdline/);
  });

  it('--disk IMG --booted B keeps the known-good slot, as a live node does', async () => {
    // A is the known-good default (mark-good above); an image said to run B must not lose A
    const before = sha(img);
    const r = await nu(['--disk', img, '--booted', 'B', '--pubkey', rig.pubkeyPath, 'apply', 'nonbooted', '--repository', replica, '--os-version', 'latest']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'neuralupgrade apply: psyopsOS-A is the known-good default slot; the booted slot has not been marked good yet (run neuralupgrade mark-good first)\n',
    );
    expect(sha(img)).toBe(before);
    // booted A, the other slot is free to write
    const ok = await nu(['--disk', img, '--booted', 'A', '--pubkey', rig.pubkeyPath, 'apply', 'nonbooted', '--repository', replica, '--os-version', 'latest']);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toContain(`psyopsOS-B: version ${V2} written and verified`);
  });

  it("reads the root's repository file: its first line, nothing when absent or empty", () => {
    const f = join(rig.dir, 'repository');
    writeFileSync(f, '# the deaddrop\n\nhttp://10.0.2.2:8080/os\n');
    expect(readRepositoryFile(f)).toBe('http://10.0.2.2:8080/os');
    writeFileSync(f, '\n');
    expect(readRepositoryFile(f)).toBeUndefined();
    expect(readRepositoryFile(join(rig.dir, 'no-such-file'))).toBeUndefined();
  });
});
