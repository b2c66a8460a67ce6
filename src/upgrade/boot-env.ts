import {ENV_DEFAULT, ENV_HWM, ENV_TRY, GRUBENV_MIRROR_PATH, GRUBENV_PATH, slotLabel, type SlotName} from '../boot/grub-cfg.js';
import {GRUBENV_SIZE, formatGrubEnv, readGrubEnvTolerant, updateGrubEnvBlock} from '../boot/grubenv.js';
import {resolveBoot, type BootResolution, type EspEnvFiles} from '../boot/resolve.js';
import type {FatVolume} from './esp-fs.js';
import {compareVersions} from './update-meta.js';

/** Both environment files as they are on the ESP. */
export async function readEspEnv(esp: FatVolume): Promise<EspEnvFiles> {
  const [primary, mirror] = await Promise.all([esp.read(GRUBENV_PATH), esp.read(GRUBENV_MIRROR_PATH)]);
  return {primary, mirror};
}

export async function resolveEsp(esp: FatVolume, loadable?: (s: SlotName) => boolean): Promise<BootResolution> {
  return resolveBoot(await readEspEnv(esp), loadable);
}

/** The high-water mark: the larger of the two copies (a damaged copy counts as absent). */
export function highWaterMark(env: EspEnvFiles): string | undefined {
  const vals = [env.primary, env.mirror]
    .map((b) => (b === undefined ? undefined : readGrubEnvTolerant(b)?.get(ENV_HWM)))
    .filter((v): v is string => v !== undefined && v !== '');
  return vals.sort(compareVersions).at(-1);
}

/**
 * Writes one environment file: in place when it exists with the right size (GRUB's
 * save_env needs the file, and an in-place write never leaves it truncated), created
 * otherwise. A damaged file is replaced by a fresh block holding `vars`.
 */
async function writeEnvFile(esp: FatVolume, path: string, current: Uint8Array | undefined, vars: Record<string, string | undefined>): Promise<void> {
  const base = current !== undefined && readGrubEnvTolerant(current) !== undefined ? current : undefined;
  const block = base
    ? updateGrubEnvBlock(base, vars)
    : formatGrubEnv(Object.fromEntries(Object.entries(vars).filter((e): e is [string, string] => e[1] !== undefined)));
  if (current !== undefined && current.length === GRUBENV_SIZE) await esp.overwriteInPlace(path, block);
  else await esp.write(path, block);
  esp.flush();
}

/** Sets (or clears, with undefined) the slot to try once: one small write of the primary block. */
export async function setTrySlot(esp: FatVolume, slot: SlotName | undefined): Promise<void> {
  const env = await readEspEnv(esp);
  const now = resolveBoot(env);
  const vars: Record<string, string | undefined> = {[ENV_TRY]: slot === undefined ? '' : slotLabel(slot)};
  // a primary without a valid default would make GRUB ignore the try: carry the default along
  if (now.knownGoodFrom !== 'primary') vars[ENV_DEFAULT] = slotLabel(now.knownGood);
  await writeEnvFile(esp, GRUBENV_PATH, env.primary, vars);
}

/**
 * Makes `slot` the known-good default (and optionally raises the high-water mark): the
 * mirror first, then the primary, so at every moment one valid copy names a good slot.
 */
export async function setDefaultSlot(esp: FatVolume, slot: SlotName, hwm?: string): Promise<void> {
  const env = await readEspEnv(esp);
  const mark = [hwm, highWaterMark(env)]
    .filter((v): v is string => !!v)
    .sort(compareVersions)
    .at(-1);
  const vars: Record<string, string | undefined> = {[ENV_DEFAULT]: slotLabel(slot)};
  if (mark !== undefined) vars[ENV_HWM] = mark;
  await writeEnvFile(esp, GRUBENV_MIRROR_PATH, env.mirror, vars);
  await writeEnvFile(esp, GRUBENV_PATH, env.primary, {...vars, [ENV_TRY]: ''});
}

/** Creates the two environment files when missing (a fresh ESP); never touches existing ones. */
export async function ensureEnvFiles(esp: FatVolume, defaultSlot: SlotName): Promise<void> {
  const env = await readEspEnv(esp);
  if (env.mirror === undefined) await writeEnvFile(esp, GRUBENV_MIRROR_PATH, undefined, {[ENV_DEFAULT]: slotLabel(defaultSlot)});
  if (env.primary === undefined) {
    await writeEnvFile(esp, GRUBENV_PATH, undefined, {[ENV_DEFAULT]: slotLabel(defaultSlot), [ENV_TRY]: ''});
  }
}
