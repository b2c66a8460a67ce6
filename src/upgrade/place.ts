import {existsSync, readFileSync, readdirSync, realpathSync, statSync} from 'node:fs';
import {basename} from 'node:path';
import {readPartitions, type Partition} from '../disk/gpt.js';
import {ESP_LABEL, slotFromLabel, slotLabel, type SlotName} from '../boot/grub-cfg.js';
import {PsyError} from '../errors.js';
import {runTool} from '../tools/run.js';
import {FatVolume} from './esp-fs.js';
import type {Region} from './region.js';

export const ESP_TYPE_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';

/**
 * Where neuralupgrade acts: a disk image file (`--disk FILE`: partitions from its GPT)
 * or the running node (partition devices by label, the booted slot from the kernel
 * command line). Both hand out byte regions; everything above works on regions.
 */
export interface Place {
  readonly kind: 'image' | 'live';
  readonly description: string;
  readonly slots: Readonly<Record<SlotName, Region>>;
  readonly esp: Region;
  /** The slot the running system booted from (live), undefined for an image. */
  readonly booted: SlotName | undefined;
}

/** Partitions of a GPT image (src/disk), by GPT name; the psyopsOS order (ESP, secret, A, B) when unnamed. */
export async function openImage(file: string): Promise<Place> {
  if (!existsSync(file)) throw new PsyError('no-such-disk', `disk image ${file} does not exist`);
  const parts = await readPartitions(file);
  const region = (p: Partition): Region => ({path: file, offset: p.offset, size: p.size});
  const byName = (n: string) => parts.find((p) => p.name === n);
  const esp = byName(ESP_LABEL) ?? parts.find((p) => p.typeGuid.toUpperCase() === ESP_TYPE_GUID);
  const a = byName(slotLabel('A')) ?? (parts.length === 4 ? parts[2] : undefined);
  const b = byName(slotLabel('B')) ?? (parts.length === 4 ? parts[3] : undefined);
  if (!esp || !a || !b) {
    throw new PsyError('bad-disk', `${file}: expected partitions ${ESP_LABEL}, psyopsOS-A and psyopsOS-B in its GPT`);
  }
  return {kind: 'image', description: `disk image ${file}`, slots: {A: region(a), B: region(b)}, esp: region(esp), booted: undefined};
}

/** `psyopsos=psyopsOS-X` from a kernel command line. */
export function bootedSlotFromCmdline(cmdline: string): SlotName | undefined {
  const m = /(?:^|\s)psyopsos=(\S+)/.exec(cmdline);
  return m ? slotFromLabel(m[1]!) : undefined;
}

export interface LiveOptions {
  readonly cmdlinePath?: string;
  readonly devDir?: string;
  /** Where sysfs is (default /sys): partitions by GPT name, device sizes. */
  readonly sysDir?: string;
  readonly bootedOverride?: SlotName;
}

/** The partition whose GPT name is `label`, from sysfs uevent files (PARTNAME=). */
function sysfsPartition(label: string, devDir: string, sysDir: string): string | undefined {
  const base = `${sysDir}/class/block`;
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return undefined;
  }
  for (const name of names.sort()) {
    let uevent: string;
    try {
      uevent = readFileSync(`${base}/${name}/uevent`, 'utf8');
    } catch {
      continue;
    }
    if (!uevent.split('\n').includes(`PARTNAME=${label}`)) continue;
    const dev = `${devDir}/${/^DEVNAME=(.+)$/m.exec(uevent)?.[1] ?? name}`;
    if (existsSync(dev)) return dev;
  }
  return undefined;
}

/**
 * The device of a slot or the ESP: by GPT name or filesystem label in /dev/disk (udev),
 * by GPT name in sysfs (no udev: busybox mdev makes no /dev/disk), then by filesystem
 * label with `blkid -L`. busybox's blkid exits 0 and prints nothing for a label it does
 * not know, so only a path that exists counts.
 */
async function deviceFor(label: string, devDir: string, sysDir: string): Promise<string> {
  // GPT names survive while a slot's filesystem is being rewritten; filesystem labels do not.
  for (const dir of ['by-partlabel', 'by-label']) {
    const p = `${devDir}/disk/${dir}/${label}`;
    if (existsSync(p)) return realpathSync(p);
  }
  const sys = sysfsPartition(label, devDir, sysDir);
  if (sys !== undefined) return sys;
  let found = '';
  try {
    found = (await runTool('blkid', ['-L', label])).stdout.toString('utf8').trim().split('\n')[0]!.trim();
  } catch {
    // not found (util-linux exits 2) or no blkid at all
  }
  if (found !== '' && existsSync(found)) return found;
  throw new PsyError(
    'no-such-partition',
    `no partition labelled ${label} (looked in ${devDir}/disk/by-partlabel, ${devDir}/disk/by-label, ${sysDir}/class/block and blkid -L)`,
  );
}

function deviceSize(dev: string, sysDir: string): number {
  const sys = `${sysDir}/class/block/${basename(dev)}/size`;
  if (existsSync(sys)) return Number(readFileSync(sys, 'utf8').trim()) * 512;
  // a partition kept in a plain file (a device directory set up for tests or a chroot)
  const st = statSync(dev, {throwIfNoEntry: false});
  if (st?.isFile()) return st.size;
  throw new PsyError('no-such-partition', `cannot read the size of ${dev} (no ${sys})`);
}

function mountedDevices(): Set<string> {
  const out = new Set<string>();
  try {
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const dev = line.split(' ')[0];
      if (dev?.startsWith('/dev/')) out.add(existsSync(dev) ? realpathSync(dev) : dev);
    }
  } catch {
    // no /proc: nothing known to be mounted
  }
  return out;
}

/** The running node: devices by label, booted slot from /proc/cmdline. */
export async function openLive(options: LiveOptions = {}): Promise<Place> {
  const devDir = options.devDir ?? '/dev';
  const cmdlinePath = options.cmdlinePath ?? '/proc/cmdline';
  let booted = options.bootedOverride;
  if (booted === undefined) {
    let cmdline = '';
    try {
      cmdline = readFileSync(cmdlinePath, 'utf8');
    } catch {
      throw new PsyError('not-psyopsos', `cannot read ${cmdlinePath}`);
    }
    booted = bootedSlotFromCmdline(cmdline);
    if (booted === undefined) {
      throw new PsyError('not-psyopsos', `no psyopsos=psyopsOS-A|B in ${cmdlinePath}: not booted from a psyopsOS slot (use --disk FILE for an image)`);
    }
  }
  const sysDir = options.sysDir ?? '/sys';
  const region = async (label: string): Promise<Region> => {
    const dev = await deviceFor(label, devDir, sysDir);
    return {path: dev, offset: 0, size: deviceSize(dev, sysDir)};
  };
  // one after the other: the first one missing is the one reported
  const a = await region(slotLabel('A'));
  const b = await region(slotLabel('B'));
  const esp = await region(ESP_LABEL);
  return {kind: 'live', description: 'this node', slots: {A: a, B: b}, esp, booted};
}

/** Refuses to write a device that is mounted (the booted slot, or a mounted ESP). */
export function assertNotMounted(place: Place, region: Region, what: string): void {
  if (place.kind !== 'live') return;
  if (mountedDevices().has(region.path)) throw new PsyError('busy', `${what} (${region.path}) is mounted; refusing to write it`);
}

/** The ESP of a place; for writing on a live node, refused while the ESP is mounted. */
export function espVolume(place: Place, forWrite: boolean, sourceDateEpoch?: number): FatVolume {
  if (forWrite) assertNotMounted(place, place.esp, 'the ESP');
  return new FatVolume(place.esp.path, place.esp.offset, sourceDateEpoch);
}
