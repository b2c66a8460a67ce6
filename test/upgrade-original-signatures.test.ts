import {createHash} from 'node:crypto';
import {execFileSync} from 'node:child_process';
import {copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {EPOCH, runNeuralupgrade, UpgradeRig} from './helpers/upgrade-rig.js';

const OLDEST = '20240105-120000'; // bare "psyopsOS" word, no type=, no architecture=, no size=
const OLD = '20240705-173840'; // type= and architecture=, no size=
const NEXT = '20240801-000000';

const nu = runNeuralupgrade;

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/**
 * Signatures as the original psyopsOS made them, with the real minisign tool and its
 * trusted comments (psyops.md §5): no size=, and the earliest with a bare `psyopsOS`
 * word instead of type=.
 */
describe("the original psyopsOS's signatures and slot records", () => {
  let rig: UpgradeRig;
  let pub: string;
  let key: string;
  let replica: string;

  function minisignSign(file: string, comment: string): void {
    execFileSync('minisign', ['-S', '-s', key, '-m', file, '-t', comment], {stdio: ['ignore', 'ignore', 'pipe']});
  }

  async function originalOstar(version: string, dir: string, form: 'bare' | 'typed', bytes?: number): Promise<string> {
    const tar = await rig.ostar(version, {dir, unsigned: true, ...(bytes !== undefined ? {bytes} : {})});
    const common = `filename=psyopsOS.x86_64.${version}.tar version=${version} kernel=6.6.0-${version} alpine=3.21`;
    minisignSign(tar, form === 'bare' ? `psyopsOS ${common}` : `type=psyopsOS ${common} architecture=x86_64`);
    return tar;
  }

  beforeAll(async () => {
    rig = new UpgradeRig('upgrade-original');
    pub = join(rig.dir, 'minisign.pubkey');
    key = join(rig.dir, 'minisign.seckey');
    execFileSync('minisign', ['-G', '-W', '-p', pub, '-s', key], {stdio: 'ignore'});
    replica = join(rig.dir, 'replica');
    await originalOstar(OLDEST, replica, 'bare');
    await originalOstar(OLD, replica, 'typed');
    symlinkSync(`psyopsOS.x86_64.${OLD}.tar.minisig`, join(replica, 'psyopsOS.x86_64.latest.tar.minisig'));
  });
  afterAll(() => rig.cleanup());

  it('show, check and download accept them', async () => {
    const img = await rig.image('show.img');
    const g = ['--disk', img, '--pubkey', pub, '--repository', replica];
    let r = await nu(['show', ...g]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`latest psyopsOS: ${OLD} (psyopsOS.x86_64.${OLD}.tar)`);
    r = await nu(['check', '--target', 'a', '--os-version', OLDEST, ...g]);
    expect(r).toMatchObject({code: 1, stderr: ''});
    expect(r.stdout).toContain(`psyopsOS-A: currently nothing, repository has ${OLDEST}`);
    const out = join(rig.dir, 'dl');
    r = await nu(['download', '--os-version', OLDEST, ...g, out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const name = `psyopsOS.x86_64.${OLDEST}.tar`;
    expect(sha(join(out, name))).toBe(sha(join(replica, name)));
    // the saved signature is the original's, and the real minisign accepts the pair
    expect(readFileSync(join(out, `${name}.minisig`), 'utf8')).toContain(`trusted comment: psyopsOS filename=${name}`);
    execFileSync('minisign', ['-V', '-p', pub, '-m', join(out, name)], {stdio: 'ignore'});
  });

  it('apply writes them, capped by the slot, and status shows their versions', async () => {
    const img = await rig.image('apply.img');
    const g = ['--disk', img, '--pubkey', pub];
    let r = await nu(['apply', 'a', '--os-tar', join(replica, `psyopsOS.x86_64.${OLDEST}.tar`), '--default', 'A', ...g]);
    expect(r.stderr).toBe('');
    r = await nu(['apply', 'nonbooted', '--booted', 'A', '--os-version', 'latest', '--repository', replica, ...g]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`psyopsOS-B: version ${OLD} written and verified`);
    r = await nu(['status', '--booted', 'A', ...g]);
    expect(r.stdout).toMatch(new RegExp(`^psyopsOS-A: version ${OLDEST} \\(installed\\) \\[booted, default\\]$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^psyopsOS-B: version ${OLD} \\(installed\\) \\[nonbooted, next boot\\]$`, 'm'));
  });

  it('refuses an unsized tarball bigger than the slot before writing anything', async () => {
    const img = await rig.image('big.img');
    const before = sha(img);
    const dir = join(rig.dir, 'big');
    const tar = await originalOstar(NEXT, dir, 'typed', 26 << 20);
    symlinkSync(`psyopsOS.x86_64.${NEXT}.tar.minisig`, join(dir, 'psyopsOS.x86_64.latest.tar.minisig'));
    const g = ['--disk', img, '--pubkey', pub, '--booted', 'A'];
    let r = await nu(['apply', 'nonbooted', '--os-tar', tar, ...g]);
    expect(r).toMatchObject({code: 1});
    expect(r.stderr).toMatch(new RegExp(`^neuralupgrade apply: ${tar.replace(/[.]/g, '\\.')} is larger than slot psyopsOS-B \\(\\d+ bytes\\)\\n$`));
    r = await nu(['apply', 'nonbooted', '--os-version', 'latest', '--repository', dir, ...g]);
    expect(r).toMatchObject({code: 1});
    expect(r.stderr).toMatch(
      /^neuralupgrade apply: psyopsOS\.x86_64\.20240801-000000\.tar from local replica .* is larger than slot psyopsOS-B \(\d+ bytes\)\n$/,
    );
    expect(sha(img)).toBe(before);
  });

  it("recognises a node whose slots hold the original's records, and moves it to psy's updater", async () => {
    // the original's layout: filesystem labels only (GPT names are all "primary"), the
    // tarball unpacked onto each slot with its signature as psyopsOS.tar.minisig and a
    // side file named after the label; grub-install's grub/ folder on the ESP
    const dev = join(rig.dir, 'node-dev');
    const parts = join(rig.dir, 'node-parts');
    mkdirSync(join(dev, 'disk', 'by-label'), {recursive: true});
    mkdirSync(parts);
    for (const [slot, version] of [
      ['A', OLD],
      ['B', OLDEST],
    ] as const) {
      const label = `psyopsOS-${slot}`;
      const tree = join(rig.dir, `tree-${slot}`);
      mkdirSync(tree);
      const content = UpgradeRig.osContent(version);
      for (const [name, data] of Object.entries(content)) writeFileSync(join(tree, name), data);
      copyFileSync(join(replica, `psyopsOS.x86_64.${version}.tar.minisig`), join(tree, 'psyopsOS.tar.minisig'));
      writeFileSync(join(tree, label), label);
      const f = join(parts, label);
      execFileSync('truncate', ['-s', String(24 << 20), f]);
      execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', label, '-d', tree, f], {env: {...process.env, E2FSPROGS_FAKE_TIME: String(EPOCH)}});
      symlinkSync(f, join(dev, 'disk', 'by-label', label));
    }
    const espFile = join(parts, 'PSYOPSOSEFI');
    execFileSync('truncate', ['-s', String(40 << 20), espFile]);
    execFileSync('mkfs.vfat', ['-F', '32', '-n', 'PSYOPSOSEFI', espFile], {stdio: 'ignore'});
    const espDir = join(rig.dir, 'esp-old');
    mkdirSync(join(espDir, 'grub'), {recursive: true});
    writeFileSync(join(espDir, 'grub', 'grub.cfg'), 'set default="psyopsOS-A"\n');
    // what grub-install --removable leaves: the loader (its bytes do not matter here) and grub/
    mkdirSync(join(espDir, 'EFI', 'BOOT'), {recursive: true});
    writeFileSync(join(espDir, 'EFI', 'BOOT', 'BOOTX64.EFI'), 'MZ grub-install loader, prefix /grub');
    const espName = 'psyopsESP.x86_64-uefi.20240705-173840.tar';
    writeFileSync(join(espDir, espName), 'esp');
    minisignSign(join(espDir, espName), `type=psyopsESP filename=${espName} version=20240705-173840 efi_programs=memtest64.efi,tcshell.efi`);
    const mt = {...process.env, MTOOLS_SKIP_CHECK: '1'};
    execFileSync('mcopy', ['-i', espFile, '-s', join(espDir, 'grub'), join(espDir, 'EFI'), '::/'], {env: mt});
    execFileSync('mcopy', ['-i', espFile, `${join(espDir, espName)}.minisig`, '::/psyopsESP.tar.minisig'], {env: mt});
    symlinkSync(espFile, join(dev, 'disk', 'by-label', 'PSYOPSOSEFI'));
    const cmdline = join(rig.dir, 'cmdline');
    writeFileSync(cmdline, 'ro psyopsos=psyopsOS-A console=ttyS0\n');
    const g = ['--dev', dev, '--cmdline', cmdline, '--pubkey', pub];

    let r = await nu(['status', ...g]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^psyopsOS-A: version ${OLD} \\(installed: record of the original psyopsOS\\) \\[booted`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^psyopsOS-B: version ${OLDEST} \\(installed: record of the original psyopsOS\\) \\[nonbooted`, 'm'));
    expect(r.stdout).toMatch(/^ESP: version 20240705-173840, bootable \(grub\)$/m);

    // psy's first update of that node: its ESP (with the environment block) and the other slot
    const os = await rig.ostar(NEXT, {dir: join(rig.dir, 'psy'), unsigned: true});
    minisignSign(os, `type=psyopsOS filename=psyopsOS.x86_64.${NEXT}.tar version=${NEXT} architecture=x86_64 size=${readFileSync(os).length}`);
    const esp = await rig.esptar('20250101-000000', {dir: join(rig.dir, 'psy')});
    minisignSign(
      esp.path,
      `type=psyopsESP filename=psyopsESP.x86_64-uefi.20250101-000000.tar version=20250101-000000 platform=x86_64-uefi size=${readFileSync(esp.path).length}`,
    );
    r = await nu(['apply', 'nonbooted', 'efisys', '--os-tar', os, '--esp-tar', esp.path, ...g]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    r = await nu(['status', ...g]);
    expect(r.stdout).toMatch(new RegExp(`^psyopsOS-B: version ${NEXT} \\(installed\\) \\[nonbooted, next boot\\]$`, 'm'));
    expect(r.stdout).toMatch(/^if that boot fails: psyopsOS-A$/m);
  });
});
