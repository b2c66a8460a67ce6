import {createHash} from 'node:crypto';
import {EFI_BOOT_PATH, GRUB_DIR_PREFIX, type SlotName} from '../boot/grub-cfg.js';
import {resolveBoot} from '../boot/resolve.js';
import {PsyError} from '../errors.js';
import {ensureEnvFiles, readEspEnv} from './boot-env.js';
import {FatVolume} from './esp-fs.js';
import {ESP_MANIFEST, type VerifiedUpdate} from './fetch-update.js';
import {espVolume, type Place} from './place.js';
import {dropCachedReads} from './region.js';
import type {StepHook} from './apply-os.js';
import {memberBytes, type TarMember} from './tar.js';

/** The ESP's version record: the esptar's signature. */
export const ESP_RECORD = '/psyopsESP.tar.minisig';
const EFI_NEW = '/EFI/BOOT/BOOTX64.NEW';

/**
 * The numbered steps of an ESP update. New files go beside the old ones; the rename of
 * BOOTX64.EFI (whose built-in prefix names its grub directory) is the only switch.
 */
export const ESP_STEPS = [
  'env-init', // 1. create the environment block and its mirror if missing
  'write-grub-dir', // 2. the new grub-<id>/ directory beside the old one, flushed
  'write-efi-new', // 3. BOOTX64.NEW written, flushed, read back and compared
  'switch', // 4. BOOTX64.EFI's directory entry takes BOOTX64.NEW's clusters (one 32-byte write)
  'record', // 5. manifest.json and the signature as the ESP's version record (new file + rename each)
  'cleanup', // 6. remove grub directories no BOOTX64.EFI points at
] as const;

/** The grub directory a BOOTX64.EFI was built for (its embedded prefix). */
export function grubDirOf(efi: Uint8Array | undefined): string | undefined {
  if (!efi) return undefined;
  const m = /\/(grub-[0-9a-f]{12})\0/.exec(Buffer.from(efi).toString('latin1'));
  return m?.[1];
}

export interface EspBootState {
  /** BOOTX64.EFI exists and its grub directory holds a grub.cfg. */
  readonly bootable: boolean;
  readonly grubDir: string | undefined;
  readonly efiSha256: string | undefined;
}

export async function espBootState(esp: FatVolume): Promise<EspBootState> {
  const efi = await esp.read(EFI_BOOT_PATH);
  // the original psyopsOS's ESP: grub-install's BOOTX64.EFI with its prefix /grub
  const grubDir = grubDirOf(efi) ?? (efi !== undefined && (await esp.exists('/grub/grub.cfg')) ? 'grub' : undefined);
  const cfg = grubDir ? await esp.exists(`/${grubDir}/grub.cfg`) : false;
  return {bootable: efi !== undefined && cfg, grubDir, efiSha256: efi ? createHash('sha256').update(efi).digest('hex') : undefined};
}

function readMember(update: VerifiedUpdate, m: TarMember): Buffer {
  const data = memberBytes(m);
  if (data.length !== m.size) throw new PsyError('bad-tarball', `${update.source}: staged ${m.name} has ${data.length} bytes, expected ${m.size}`);
  return data;
}

export interface InstallEspOptions {
  readonly sourceDateEpoch?: number;
  readonly beforeStep?: StepHook;
  readonly log?: (line: string) => void;
  /** The slot the environment block defaults to when it has to be created. */
  readonly defaultSlot?: SlotName;
}

/**
 * Everything that can refuse an ESP apply, read-only: the ESP is not mounted, the esptar's
 * BOOTX64.EFI is built for its grub folder, and the ESP has room for what is written
 * beside the old files before they are freed (the new grub folder, BOOTX64.NEW, the new
 * manifest and record, missing environment blocks). `apply` runs it before the first
 * write anywhere.
 */
export async function checkEspApply(place: Place, update: VerifiedUpdate): Promise<{efi: Buffer; grubDir: string}> {
  if (update.meta.kind !== 'esp') throw new PsyError('wrong-type', `${update.source} is not an ESP update`);
  const esp = espVolume(place, true);
  const efiMember = update.members.find((m) => m.name === 'EFI/BOOT/BOOTX64.EFI')!;
  const efi = readMember(update, efiMember);
  const grubDir = update.members.find((m) => m.name.startsWith(GRUB_DIR_PREFIX))!.name.split('/')[0]!;
  if (grubDirOf(efi) !== grubDir) {
    throw new PsyError('bad-tarball', `${update.source}: BOOTX64.EFI is built for ${grubDirOf(efi) ?? 'no grub-<id> directory'}, the tarball holds ${grubDir}`);
  }
  const {free, clusterBytes} = await esp.space();
  const clusters = (n: number) => Math.max(1, Math.ceil(n / clusterBytes)) * clusterBytes;
  const current = await espBootState(esp);
  let need = clusters(efi.length) + clusters(Buffer.byteLength(update.signatureText));
  if (current.grubDir !== grubDir) {
    const files = update.members.filter((m) => m.name.startsWith(grubDir + '/'));
    // the folder's own entries: 32 bytes each, long names take more
    need += files.reduce((sum, m) => sum + clusters(m.size), 0) + clusters(64 * (files.length + 2));
  }
  const manifest = update.members.find((m) => m.name === ESP_MANIFEST);
  if (manifest) need += clusters(manifest.size);
  const env = await readEspEnv(esp);
  if (env.primary === undefined) need += clusters(1024);
  if (env.mirror === undefined) need += clusters(1024);
  // a directory that outgrows its cluster takes another
  need += 2 * clusterBytes;
  if (need > free) {
    throw new PsyError('esp-full', `${update.source} needs ${need} bytes free on the ESP, it has ${free}; the ESP is unchanged`);
  }
  return {efi, grubDir};
}

export async function installEsp(place: Place, update: VerifiedUpdate, options: InstallEspOptions = {}): Promise<{grubDir: string}> {
  const {efi, grubDir} = await checkEspApply(place, update);
  const esp = espVolume(place, true, options.sourceDateEpoch);
  const log = options.log ?? (() => {});
  let n = 0;
  const step = async (name: (typeof ESP_STEPS)[number]) => {
    n++;
    await options.beforeStep?.(n, name);
    log(`ESP: ${n}/${ESP_STEPS.length} ${name}`);
  };

  await step('env-init');
  const known = resolveBoot(await readEspEnv(esp)).knownGood;
  await ensureEnvFiles(esp, options.defaultSlot ?? place.booted ?? known);

  await step('write-grub-dir');
  const current = await espBootState(esp);
  if (current.grubDir !== grubDir) {
    // a directory of this name that no BOOTX64.EFI points at may be a cut-off earlier try
    await esp.removeTree(`/${grubDir}`);
    await esp.mkdirp(`/${grubDir}`);
    for (const m of update.members.filter((x) => x.name.startsWith(grubDir + '/'))) {
      await esp.write(`/${m.name}`, readMember(update, m));
    }
  }
  esp.flush();

  await step('write-efi-new');
  await esp.mkdirp('/EFI/BOOT');
  await esp.write(EFI_NEW, efi);
  esp.flush();
  await dropCachedReads(esp.path);
  const back = await esp.read(EFI_NEW);
  if (!back || !back.equals(efi)) throw new PsyError('esp-verify-failed', 'BOOTX64.NEW read back differs from what was written; the ESP is unchanged');

  await step('switch');
  if (await esp.exists(EFI_BOOT_PATH)) await esp.switchFile('/EFI/BOOT', 'BOOTX64.NEW', 'BOOTX64.EFI');
  else await esp.rename(EFI_NEW, EFI_BOOT_PATH);
  esp.flush();

  await step('record');
  const manifest = update.members.find((m) => m.name === ESP_MANIFEST);
  if (manifest) {
    await esp.write(`/${ESP_MANIFEST}.new`, readMember(update, manifest));
    esp.flush();
    await esp.rename(`/${ESP_MANIFEST}.new`, `/${ESP_MANIFEST}`);
  }
  await esp.write(`${ESP_RECORD}.new`, Buffer.from(update.signatureText));
  esp.flush();
  await esp.rename(`${ESP_RECORD}.new`, ESP_RECORD);
  esp.flush();

  await step('cleanup');
  for (const entry of await esp.list('/')) {
    const name = entry.replace(/\/$/, '');
    if (entry.endsWith('/') && name.startsWith(GRUB_DIR_PREFIX) && name !== grubDir) await esp.removeTree(`/${name}`);
  }
  esp.flush();
  return {grubDir};
}
