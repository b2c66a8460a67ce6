import {execFileSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {mkdir, stat, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {PassThrough} from 'node:stream';
import {buildEspTree} from '../../src/boot/esp-tree.js';
import {main} from '../../src/cli/neuralupgrade.js';
import {buildDiskImage, psyopsPartitions} from '../../src/disk/index.js';
import {directoryEntries, writeTar, type TarEntry} from '../../src/image/tar.js';
import {formatPublicKey, generateKeyPair, parsePublicKey, type KeyPair} from '../../src/sign/keys.js';
import {signFile} from '../../src/sign/signature.js';
import {formatTrustedComment} from '../../src/sign/trusted-comment.js';
import {installEsp} from '../../src/upgrade/apply-esp.js';
import {installOs} from '../../src/upgrade/apply-os.js';
import {markGood, setDefault} from '../../src/upgrade/control.js';
import {verifyLocal} from '../../src/upgrade/fetch-update.js';
import {openLive, type Place} from '../../src/upgrade/place.js';

export const EPOCH = 1_700_000_000;

/** What one in-process neuralupgrade run printed and its exit status. */
export interface NeuralupgradeRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs neuralupgrade's main in this process, with an empty environment. */
export async function runNeuralupgrade(args: string[]): Promise<NeuralupgradeRun> {
  const out = new PassThrough();
  const err = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  out.on('data', (b: Buffer) => o.push(b));
  err.on('data', (b: Buffer) => e.push(b));
  const code = await main(args, {stdout: out, stderr: err, env: {}});
  return {code, stdout: Buffer.concat(o).toString('utf8'), stderr: Buffer.concat(e).toString('utf8')};
}

/**
 * A temp-dir rig for upgrade tests: a minisign key pair (in minisign's file format, so
 * the real tool can cross-check), signed ostars/esptars made from small real files, and
 * a real GPT disk image built with src/disk (FAT32 ESP, ext4 slots).
 */
export class UpgradeRig {
  readonly dir: string;
  readonly keys: KeyPair;
  readonly pubkeyPath: string;

  constructor(name: string) {
    this.dir = mkdtempSync(join(tmpdir(), `${name}-`));
    this.keys = generateKeyPair();
    this.pubkeyPath = join(this.dir, 'minisign.pub');
    writeFileSync(this.pubkeyPath, formatPublicKey(this.keys.publicKey));
  }

  cleanup(): void {
    rmSync(this.dir, {recursive: true, force: true});
  }

  /** Signs `file` into `file.minisig` with the given trusted fields (size added unless given). */
  async sign(file: string, fields: Record<string, string | number>, options: {omitSize?: boolean; keys?: KeyPair} = {}): Promise<string> {
    const all = {...fields};
    if (!options.omitSize && all['size'] === undefined) all['size'] = (await stat(file)).size;
    const text = await signFile(file, (options.keys ?? this.keys).secretKey, {trustedComment: formatTrustedComment(all)});
    await writeFile(`${file}.minisig`, text);
    return text;
  }

  /** Content of a slot for a version: recognisable, and different per version. */
  static osContent(version: string, bytes = 64 * 1024): Record<string, Buffer> {
    const fill = (tag: string, n: number) => {
      const b = Buffer.alloc(n);
      const s = Buffer.from(`${tag}:${version}:`);
      for (let i = 0; i < n; i++) b[i] = s[i % s.length]!;
      return b;
    };
    return {
      kernel: fill('kernel', 8192),
      'kernel.version': Buffer.from(`6.6.0-${version}\n`),
      initramfs: fill('initramfs', 16384),
      squashfs: fill('squashfs', bytes),
      'squashfs.alpine_version': Buffer.from('3.21\n'),
    };
  }

  /** An ostar in `dir` named as the repository names it, signed. Returns its path. */
  async ostar(
    version: string,
    options: {
      dir?: string;
      arch?: string;
      type?: string;
      members?: Record<string, Buffer>;
      extraEntries?: TarEntry[];
      fields?: Record<string, string>;
      bytes?: number;
      unsigned?: boolean;
    } = {},
  ): Promise<string> {
    const dir = options.dir ?? join(this.dir, 'repo');
    await mkdir(dir, {recursive: true});
    const arch = options.arch ?? 'x86_64';
    const name = `psyopsOS.${arch}.${version}.tar`;
    const path = join(dir, name);
    const members = options.members ?? UpgradeRig.osContent(version, options.bytes);
    const entries: TarEntry[] = Object.keys(members)
      .sort()
      .map((p) => ({type: 'data', path: p, mode: 0o644, data: members[p]!}));
    await writeTar(path, [...entries, ...(options.extraEntries ?? [])], EPOCH);
    if (!options.unsigned) {
      await this.sign(path, {
        type: options.type ?? 'psyopsOS',
        filename: name,
        version,
        kernel: `6.6.0-${version}`,
        alpine: '3.21',
        architecture: arch,
        ...options.fields,
      });
    }
    return path;
  }

  /** An esptar built by buildEspTree (real grub-mkimage), signed. */
  async esptar(version: string, options: {dir?: string; timeoutSec?: number; kernelArgs?: string} = {}): Promise<{path: string; grubDir: string}> {
    const dir = options.dir ?? join(this.dir, 'repo');
    await mkdir(dir, {recursive: true});
    const tree = join(this.dir, `esp-tree-${version}`);
    const built = await buildEspTree({
      outDir: tree,
      sourceDateEpoch: EPOCH,
      ...(options.timeoutSec !== undefined ? {timeoutSec: options.timeoutSec} : {}),
      kernelArgs: options.kernelArgs ?? `psyesp=${version}`,
    });
    const name = `psyopsESP.x86_64-uefi.${version}.tar`;
    const path = join(dir, name);
    // laid out as the esptar rule does: the tree, manifest.json, folders as entries
    await writeFile(join(tree, 'manifest.json'), JSON.stringify({version: 1, extra_programs: {}}, null, 2) + '\n');
    await writeTar(path, await directoryEntries(tree), EPOCH);
    await this.sign(path, {type: 'psyopsESP', filename: name, version, platform: 'x86_64-uefi'});
    return {path, grubDir: built.grubDir};
  }

  /** A psyopsOS disk image with empty filesystems (small sizes for tests). */
  async image(name = 'disk.img', slotMiB = 24): Promise<string> {
    const path = join(this.dir, name);
    await buildDiskImage(path, {seed: 'upgrade-test', epoch: EPOCH, partitions: psyopsPartitions({espMiB: 40, secretMiB: 4, slotMiB})});
    return path;
  }

  /**
   * A live node as a fresh one is: partitions found through `DIR/dev/disk/by-partlabel`
   * (each a file, or whatever `attach` makes of it, such as a loop device), the booted
   * slot in a cmdline file, the ESP and slot A installed and A known-good.
   */
  async freshLiveNode(o: {
    readonly slotBytes: number;
    readonly cmdline: string;
    readonly ostarBytes?: number;
    readonly attach?: (file: string, label: string) => string;
  }): Promise<{dev: string; cmdline: string; live: Place}> {
    const dev = join(this.dir, 'dev');
    const parts = join(this.dir, 'parts');
    mkdirSync(join(dev, 'disk', 'by-partlabel'), {recursive: true});
    mkdirSync(parts);
    const make = (label: string, size: number, mk: (f: string) => void) => {
      const f = join(parts, label);
      execFileSync('truncate', ['-s', String(size), f]);
      mk(f);
      symlinkSync(o.attach?.(f, label) ?? f, join(dev, 'disk', 'by-partlabel', label));
    };
    make('PSYOPSOSEFI', 40 << 20, (f) => execFileSync('mkfs.vfat', ['-F', '32', '-n', 'PSYOPSOSEFI', f], {stdio: 'ignore'}));
    for (const s of ['A', 'B']) make(`psyopsOS-${s}`, o.slotBytes, (f) => execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', `psyopsOS-${s}`, f]));
    const cmdline = join(this.dir, 'cmdline');
    writeFileSync(cmdline, o.cmdline);
    const pubkey = parsePublicKey(readFileSync(this.pubkeyPath, 'utf8'));
    const live = await openLive({devDir: dev, cmdlinePath: cmdline});
    const setup = {...live, kind: 'image' as const, booted: undefined};
    const esp = await verifyLocal((await this.esptar('20250101-000000')).path, {target: {kind: 'esp', arch: 'x86_64-uefi'}, pubkey}, {tmpRoot: this.dir});
    await installEsp(setup, esp, {sourceDateEpoch: EPOCH, defaultSlot: 'A'});
    const os = await verifyLocal(
      await this.ostar('20250101-000000', o.ostarBytes === undefined ? {} : {bytes: o.ostarBytes}),
      {target: {kind: 'os', arch: 'x86_64'}, pubkey},
      {tmpRoot: this.dir},
    );
    await installOs(setup, 'A', os, {tryOnce: false, sourceDateEpoch: EPOCH});
    await setDefault(setup, 'A', {pubkey});
    await markGood(setup, {slot: 'A', pubkey});
    return {dev, cmdline, live};
  }
}
