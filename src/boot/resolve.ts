import {ENV_DEFAULT, ENV_TRY, FALLBACK_DEFAULT, otherSlot, slotFromLabel, slotLabel, type SlotName} from './grub-cfg.js';
import {parseGrubEnv, updateGrubEnvBlock, type GrubEnvVars} from './grubenv.js';

/** The two environment files as found on the ESP (undefined: the file does not exist). */
export interface EspEnvFiles {
  readonly primary: Uint8Array | undefined;
  readonly mirror: Uint8Array | undefined;
}

export type DefaultSource = 'primary' | 'mirror' | 'built-in';

export interface BootResolution {
  /** The slot GRUB picks as its menu default for this boot. */
  readonly chosen: SlotName;
  /** The slot that actually boots after GRUB's fallback, or undefined if neither loads. */
  readonly boots: SlotName | undefined;
  /** The known-good slot and where GRUB read it from. */
  readonly knownGood: SlotName;
  readonly knownGoodFrom: DefaultSource;
  /** The slot GRUB was asked to try once (undefined if none was pending). */
  readonly tryRequested: SlotName | undefined;
  /** True when GRUB spent the try flag on disk and therefore boots the new slot. */
  readonly trySpent: boolean;
  /** The primary environment file after this boot attempt (GRUB's save_env), if changed. */
  readonly primaryAfter: Buffer | undefined;
  /** One line saying why, for `status`. */
  readonly reason: string;
}

/** GRUB's load_env with a whitelist: what it sets from one file (nothing if unreadable). */
function loadEnv(file: Uint8Array | undefined, names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (file === undefined) return out;
  const parsed = parseGrubEnv(file);
  if (parsed.kind === 'invalid') return out;
  const vars: GrubEnvVars = parsed.vars;
  for (const n of names) {
    const v = vars.get(n);
    if (v !== undefined) out.set(n, v);
  }
  return out;
}

/**
 * What the static grub.cfg (src/boot/grub-cfg.ts) does with these environment files,
 * step for step: which slot it picks, whether it spends a pending try, and the primary
 * block it leaves behind. `loadable(slot)` says whether a slot's kernel can be loaded
 * (its filesystem label is found); GRUB's `fallback` then takes the other slot.
 */
export function resolveBoot(env: EspEnvFiles, loadable: (slot: SlotName) => boolean = () => true): BootResolution {
  // 1. the known-good slot
  let vars = loadEnv(env.primary, [ENV_DEFAULT, ENV_TRY]);
  let def = slotFromLabel(vars.get(ENV_DEFAULT) ?? '');
  let tryValue = vars.get(ENV_TRY) ?? '';
  let from: DefaultSource = 'primary';
  if (def === undefined) {
    tryValue = '';
    vars = loadEnv(env.mirror, [ENV_DEFAULT]);
    def = slotFromLabel(vars.get(ENV_DEFAULT) ?? '');
    from = 'mirror';
    if (def === undefined) {
      def = FALLBACK_DEFAULT;
      from = 'built-in';
    }
  }
  let chosen: SlotName = def;
  let trySpent = false;
  let primaryAfter: Buffer | undefined;
  // 2. try once: spend on disk, read back, boot the new slot only if the spend stuck
  const next = slotFromLabel(tryValue);
  const tryRequested = next !== undefined && next !== def ? next : undefined;
  if (tryRequested !== undefined && env.primary !== undefined) {
    try {
      // save_env: GRUB rewrites the existing block in place; it cannot create the file
      primaryAfter = updateGrubEnvBlock(env.primary, {[ENV_TRY]: ''});
    } catch {
      primaryAfter = undefined;
    }
    if (primaryAfter !== undefined && loadEnv(primaryAfter, [ENV_TRY]).get(ENV_TRY) === '') {
      chosen = tryRequested;
      trySpent = true;
    }
  }
  // 3. GRUB's fallback entry is the other slot
  const boots = loadable(chosen) ? chosen : loadable(otherSlot(chosen)) ? otherSlot(chosen) : undefined;
  const parts = [`known-good ${slotLabel(def)} (from ${from === 'built-in' ? 'the built-in default' : from === 'primary' ? 'grubenv' : 'grubenv mirror'})`];
  if (tryRequested !== undefined) parts.push(trySpent ? `trying ${slotLabel(tryRequested)} once` : `try of ${slotLabel(tryRequested)} not recorded, skipped`);
  if (boots !== chosen) parts.push(boots === undefined ? `no slot can be loaded` : `${slotLabel(chosen)} cannot be loaded, falls back to ${slotLabel(boots)}`);
  return {chosen, boots, knownGood: def, knownGoodFrom: from, tryRequested, trySpent, primaryAfter, reason: parts.join('; ')};
}
