import {ENV_DEFAULT, ENV_HWM, ENV_TRY, SLOTS, slotLabel, type SlotName} from '../boot/grub-cfg.js';
import {readGrubEnvTolerant} from '../boot/grubenv.js';
import {resolveBoot, type BootResolution, type EspEnvFiles} from '../boot/resolve.js';
import {PsyError} from '../errors.js';
import type {PublicKey} from '../sign/keys.js';
import {highWaterMark, readEspEnv, setDefaultSlot} from './boot-env.js';
import {ESP_RECORD, espBootState, type EspBootState} from './apply-esp.js';
import {espVolume, type Place} from './place.js';
import {readSlotState, type SlotState} from './slot-record.js';
import {slotFsLabel} from './slot-fs.js';
import {compareVersions, peekTrustedFields} from './update-meta.js';

export interface EnvCopyState {
  readonly present: boolean;
  readonly valid: boolean;
  readonly vars: Record<string, string>;
}

export interface SystemStatus {
  readonly place: string;
  readonly booted: SlotName | undefined;
  readonly slots: Readonly<Record<SlotName, SlotState>>;
  readonly esp: EspBootState & {readonly version: string | undefined};
  readonly env: {readonly primary: EnvCopyState; readonly mirror: EnvCopyState; readonly highWaterMark: string | undefined};
  /** What GRUB does on the next boot, and on the boot after it (if the next one fails). */
  readonly nextBoot: BootResolution;
  readonly bootAfterThat: BootResolution;
}

function envCopy(buf: Uint8Array | undefined): EnvCopyState {
  const vars = buf === undefined ? undefined : readGrubEnvTolerant(buf);
  const pick = (m: ReadonlyMap<string, string>) => Object.fromEntries([ENV_DEFAULT, ENV_TRY, ENV_HWM].filter((k) => m.has(k)).map((k) => [k, m.get(k)!]));
  return {present: buf !== undefined, valid: vars !== undefined, vars: vars ? pick(vars) : {}};
}

/** Everything `status` and `show` report, read without writing anything. */
export async function readStatus(place: Place, options: {pubkey?: PublicKey; verifyContent?: boolean} = {}): Promise<SystemStatus> {
  const esp = espVolume(place, false);
  const env = await readEspEnv(esp);
  const loadable = (s: SlotName) => slotFsLabel(place.slots[s]) === slotLabel(s);
  const nextBoot = resolveBoot(env, loadable);
  const bootAfterThat = resolveBoot({primary: nextBoot.primaryAfter ?? env.primary, mirror: env.mirror}, loadable);
  const slots = {} as Record<SlotName, SlotState>;
  for (const s of SLOTS) slots[s] = await readSlotState(place.slots[s], slotLabel(s), options);
  const espState = await espBootState(esp);
  const record = await esp.read(ESP_RECORD);
  const espVersion = record ? peekTrustedFields(record.toString('utf8'), ESP_RECORD)?.['version'] : undefined;
  return {
    place: place.description,
    booted: place.booted,
    slots,
    esp: {...espState, version: espVersion},
    env: {primary: envCopy(env.primary), mirror: envCopy(env.mirror), highWaterMark: highWaterMark(env)},
    nextBoot,
    bootAfterThat,
  };
}

/**
 * The floor an OS update must be above: the env's high-water mark, and at least the
 * version the running slot has recorded (so a lost environment block does not reopen
 * the door to older versions).
 */
export async function versionFloor(place: Place, env?: EspEnvFiles): Promise<string | undefined> {
  const marks = [highWaterMark(env ?? (await readEspEnv(espVolume(place, false))))];
  if (place.booted !== undefined) marks.push((await readSlotState(place.slots[place.booted], slotLabel(place.booted))).version);
  return marks
    .filter((v): v is string => v !== undefined)
    .sort(compareVersions)
    .at(-1);
}

async function requireInstalled(place: Place, slot: SlotName, pubkey: PublicKey | undefined): Promise<SlotState> {
  const state = await readSlotState(place.slots[slot], slotLabel(slot), pubkey ? {pubkey} : {});
  if (state.condition !== 'installed') {
    throw new PsyError('slot-not-installed', `${slotLabel(slot)} holds no complete, signed OS (${state.condition}${state.detail ? ': ' + state.detail : ''})`);
  }
  return state;
}

/** Makes `slot` the known-good default (without raising the high-water mark). */
export async function setDefault(place: Place, slot: SlotName, options: {pubkey?: PublicKey; force?: boolean} = {}): Promise<void> {
  if (!options.force) await requireInstalled(place, slot, options.pubkey);
  await setDefaultSlot(espVolume(place, true), slot);
}

/**
 * Run by the booted system once its health checks pass: the booted slot becomes the
 * known-good default and the high-water mark rises to its version. A slot without a
 * version record (an image built from unsigned artifacts) still becomes the default;
 * the mark stays where it is. A slot whose record does not verify is refused.
 */
export async function markGood(place: Place, options: {slot?: SlotName; pubkey?: PublicKey} = {}): Promise<{slot: SlotName; version: string | undefined}> {
  const slot = options.slot ?? place.booted;
  if (slot === undefined) throw new PsyError('usage', 'mark-good needs the booted slot (run on the node, or give --slot A|B with --disk)');
  const state = await readSlotState(place.slots[slot], slotLabel(slot), options.pubkey ? {pubkey: options.pubkey} : {});
  const unrecorded = state.condition === 'incomplete' && place.booted === slot;
  if (state.condition !== 'installed' && !unrecorded) {
    throw new PsyError('slot-not-installed', `${slotLabel(slot)} holds no complete, signed OS (${state.condition}${state.detail ? ': ' + state.detail : ''})`);
  }
  await setDefaultSlot(espVolume(place, true), slot, state.version);
  return {slot, version: state.version};
}
