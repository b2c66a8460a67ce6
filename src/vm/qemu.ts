import {spawn} from 'node:child_process';
import {access, constants} from 'node:fs/promises';
import {existsSync} from 'node:fs';
import {PsyError} from '../errors.js';
import {missingToolError} from '../tools/run.js';

/**
 * The QEMU command line for booting a psyopsOS disk image with UEFI (OVMF), and the
 * choice of accelerator: KVM when it really works, TCG otherwise.
 */

export type Accel = 'kvm' | 'tcg';
export type AccelChoice = Accel | 'auto';

export interface VmOptions {
  readonly image: string;
  /** Writes go to a throwaway overlay; the image file is never changed. Default true. */
  readonly snapshot?: boolean;
  readonly memoryMiB?: number;
  readonly cpus?: number;
  /** OVMF firmware file; the Debian ovmf package's when omitted. */
  readonly firmware?: string;
  /** Where the guest's serial console goes. */
  readonly serial: {readonly kind: 'stdio'} | {readonly kind: 'file'; readonly path: string};
  /** Leave the VM off the network (default: user-mode networking). */
  readonly noNetwork?: boolean;
  /** MAC address of the VM's NIC (a node's mactab names it); QEMU's default when omitted. */
  readonly mac?: string;
  readonly extraArgs?: readonly string[];
}

export const QEMU = 'qemu-system-x86_64';
const firmwareCandidates = ['/usr/share/ovmf/OVMF.fd', '/usr/share/OVMF/OVMF.fd', '/usr/share/qemu/OVMF.fd'];

export function findFirmware(explicit?: string): string {
  if (explicit) {
    if (!existsSync(explicit)) throw new PsyError('missing-firmware', `UEFI firmware ${explicit} does not exist`);
    return explicit;
  }
  const found = firmwareCandidates.find((p) => existsSync(p));
  if (!found) throw new PsyError('missing-firmware', `no OVMF firmware found (looked in ${firmwareCandidates.join(', ')}): install the Debian package ovmf`);
  return found;
}

/** A unicast MAC address, lower-case; a one-line error naming `where` otherwise. */
export function parseMac(mac: string, where: string): string {
  const m = mac.trim().toLowerCase().replace(/-/g, ':');
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(m)) throw new PsyError('usage', `${where}: "${mac}" is not a MAC address (like 52:54:00:12:34:56)`);
  if (parseInt(m.slice(0, 2), 16) & 1) throw new PsyError('usage', `${where}: ${mac} is a multicast address; a NIC needs a unicast one (even first byte)`);
  return m;
}

export function qemuArgs(opts: VmOptions, accel: Accel): string[] {
  if (opts.mac !== undefined && opts.noNetwork) throw new PsyError('usage', `a MAC address (${opts.mac}) needs the VM's NIC, but the VM is off the network`);
  const args = [
    '-machine',
    'q35',
    '-accel',
    accel,
    '-cpu',
    accel === 'kvm' ? 'host' : 'max',
    '-smp',
    String(opts.cpus ?? 1),
    '-m',
    String(opts.memoryMiB ?? 1024),
    '-bios',
    findFirmware(opts.firmware),
    '-drive',
    `file=${opts.image},format=raw,if=virtio${opts.snapshot === false ? '' : ',snapshot=on'}`,
    '-display',
    'none',
    '-no-reboot',
  ];
  if (opts.serial.kind === 'file') args.push('-monitor', 'none', '-serial', `file:${opts.serial.path}`);
  else args.push('-serial', 'mon:stdio');
  const mac = opts.mac === undefined ? '' : `,mac=${parseMac(opts.mac, 'mac')}`;
  args.push(...(opts.noNetwork ? ['-nic', 'none'] : ['-nic', `user,model=virtio-net-pci${mac}`]));
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/**
 * Whether KVM really works: /dev/kvm must be usable and a KVM guest must start and keep
 * running for a moment (nested KVM can be present yet fail on the first vCPU setup).
 */
export async function probeKvm(firmware?: string, waitMs = 1500): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  const bios = findFirmware(firmware);
  return new Promise((resolve) => {
    const child = spawn(
      QEMU,
      [
        '-machine',
        'q35',
        '-accel',
        'kvm',
        '-cpu',
        'host',
        '-m',
        '128',
        '-display',
        'none',
        '-monitor',
        'none',
        '-serial',
        'none',
        '-nic',
        'none',
        '-bios',
        bios,
      ],
      {stdio: ['ignore', 'ignore', 'pipe']},
    );
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(!/error|failed/i.test(err));
    }, waitMs);
    child.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export async function chooseAccel(choice: AccelChoice, firmware?: string): Promise<Accel> {
  if (choice !== 'auto') return choice;
  return (await probeKvm(firmware)) ? 'kvm' : 'tcg';
}

export function qemuMissing(err: unknown): PsyError | undefined {
  return (err as NodeJS.ErrnoException).code === 'ENOENT' ? missingToolError(QEMU) : undefined;
}
