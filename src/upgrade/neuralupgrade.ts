import {otherSlot, slotLabel, type SlotName} from '../boot/grub-cfg.js';
import {PsyError} from '../errors.js';
import type {PublicKey} from '../sign/keys.js';
import {checkEspApply, ESP_RECORD, installEsp} from './apply-esp.js';
import {checkOsApply, installOs, type StepHook} from './apply-os.js';
import {setDefault, versionFloor} from './control.js';
import {downloadVerified, prepareVerify, verifyLocal, type VerifiedUpdate, type VerifyRules} from './fetch-update.js';
import {espVolume, type Place} from './place.js';
import {readEspEnv} from './boot-env.js';
import type {EspEnvFiles} from '../boot/resolve.js';
import type {Repository} from './repository.js';
import {peekTrustedFields, type UpdateTarget} from './update-meta.js';
import {withLauncher} from '../tools/run.js';

/** What every neuralupgrade operation needs: where, from where, with which key. */
export interface UpgradeContext {
  readonly place: Place;
  readonly repository?: Repository;
  readonly pubkey: PublicKey;
  readonly osTarget: UpdateTarget;
  readonly espTarget: UpdateTarget;
  readonly tmpDir: string;
  readonly allowDowngrade?: boolean;
  readonly sourceDateEpoch?: number;
  readonly log?: (line: string) => void;
}

export type ApplyTarget = 'a' | 'b' | 'nonbooted' | 'efisys';

export interface ApplyRequest {
  readonly targets: readonly ApplyTarget[];
  readonly osVersion?: string;
  readonly osTar?: string;
  readonly espVersion?: string;
  readonly espTar?: string;
  /** Try an applied slot once (default: on a live node yes, on an image no). */
  readonly tryOnce?: boolean;
  /** Make this slot the known-good default after writing (image builds). */
  readonly defaultSlot?: SlotName;
  /** For tests: called once every update is verified and staged, before the first write. */
  readonly afterVerify?: (updates: readonly VerifiedUpdate[]) => void | Promise<void>;
  /** Fault injection for tests: called before each numbered write step. */
  readonly beforeStep?: (what: 'esp' | SlotName, step: number, name: string) => void | Promise<void>;
}

export interface ApplyResult {
  readonly slots: ReadonlyArray<{slot: SlotName; version: string}>;
  readonly esp: {version: string; grubDir: string} | undefined;
  readonly tryOnce: SlotName | undefined;
}

function slotsFor(place: Place, targets: readonly ApplyTarget[]): SlotName[] {
  const out = new Set<SlotName>();
  if (targets.includes('nonbooted')) {
    if (targets.includes('a') || targets.includes('b')) throw new PsyError('usage', 'nonbooted cannot be combined with a or b');
    if (place.booted === undefined) throw new PsyError('usage', `nonbooted needs a booted slot; ${place.description} has none (name a or b)`);
    out.add(otherSlot(place.booted));
  }
  if (targets.includes('a')) out.add('A');
  if (targets.includes('b')) out.add('B');
  return [...out];
}

async function espFloor(place: Place): Promise<string | undefined> {
  const rec = await espVolume(place, false).read(ESP_RECORD);
  return rec ? peekTrustedFields(rec.toString('utf8'), ESP_RECORD)?.['version'] : undefined;
}

async function obtain(ctx: UpgradeContext, rules: VerifyRules, version: string | undefined, tar: string | undefined, flag: string): Promise<VerifiedUpdate> {
  if (tar !== undefined && version !== undefined) throw new PsyError('usage', `give either --${flag}-tar or --${flag}-version, not both`);
  if (tar !== undefined) return verifyLocal(tar, rules, {tmpRoot: ctx.tmpDir});
  if (version === undefined) throw new PsyError('usage', `this target needs --${flag}-version V|latest or --${flag}-tar FILE`);
  if (!ctx.repository) throw new PsyError('usage', `--${flag}-version needs a repository (--repository URL|DIR|s3://bucket/prefix)`);
  return downloadVerified(ctx.repository, version, rules, ctx.tmpDir);
}

/**
 * `apply`: every signature, metadata rule and tarball is verified before the first byte
 * is written anywhere; then the ESP (if asked), then each slot, then the boot choice.
 */
export async function apply(ctx: UpgradeContext, req: ApplyRequest): Promise<ApplyResult> {
  // the update is held in memory from verification to the last write: programs are
  // started by a shell made before it is read (see src/tools/launcher.ts)
  return withLauncher(() => applyVerified(ctx, req));
}

async function applyVerified(ctx: UpgradeContext, req: ApplyRequest): Promise<ApplyResult> {
  const {place} = ctx;
  const slots = slotsFor(place, req.targets);
  const wantEsp = req.targets.includes('efisys');
  if (slots.length === 0 && !wantEsp) throw new PsyError('usage', 'nothing to apply: name a, b, nonbooted and/or efisys');
  if (slots.length > 0 && place.kind === 'live' && slots.length > 1) throw new PsyError('usage', 'a running node can only write its nonbooted slot');
  // a system that booted from a slot tries what it writes; a bare image build does not
  const tryOnce = req.tryOnce ?? (place.kind === 'live' || place.booted !== undefined);
  if (tryOnce && slots.length > 1) throw new PsyError('usage', 'only one slot can be tried once; give --no-try or one slot');

  if (!wantEsp && (req.espTar !== undefined || req.espVersion !== undefined))
    throw new PsyError('usage', '--esp-tar/--esp-version given without the efisys target');
  if (slots.length === 0 && (req.osTar !== undefined || req.osVersion !== undefined))
    throw new PsyError('usage', '--os-tar/--os-version given without a slot target (a, b or nonbooted)');

  prepareVerify();
  // the boot environment, read once for the checks before the first write (each write
  // step reads it again)
  const env: EspEnvFiles | undefined = slots.length > 0 ? await readEspEnv(espVolume(place, false)) : undefined;
  const updates: VerifiedUpdate[] = [];
  try {
    // an update whose signature gives no size (the original psyopsOS's) is read at most
    // as far as what it is for can hold
    const smallest = [...slots].sort((x, y) => place.slots[x].size - place.slots[y].size)[0];
    const osUpdate = smallest
      ? await obtain(
          ctx,
          {
            target: ctx.osTarget,
            pubkey: ctx.pubkey,
            floor: await versionFloor(place, env),
            allowDowngrade: ctx.allowDowngrade ?? false,
            maxSize: {bytes: place.slots[smallest].size, what: `slot ${slotLabel(smallest)} (${place.slots[smallest].size} bytes)`},
          },
          req.osVersion,
          req.osTar,
          'os',
        )
      : undefined;
    if (osUpdate) updates.push(osUpdate);
    const espUpdate = wantEsp
      ? await obtain(
          ctx,
          {
            target: ctx.espTarget,
            pubkey: ctx.pubkey,
            floor: await espFloor(place),
            allowDowngrade: ctx.allowDowngrade ?? false,
            maxSize: {bytes: place.esp.size, what: `the ESP (${place.esp.size} bytes)`},
          },
          req.espVersion,
          req.espTar,
          'esp',
        )
      : undefined;
    if (espUpdate) updates.push(espUpdate);
    // the checks against what is on disk (targets, room in the slot and on the ESP), for
    // every target before the first write to any: a refusal of one leaves all unchanged
    for (const slot of slots) await checkOsApply(place, slot, osUpdate!, env);
    if (espUpdate) await checkEspApply(place, espUpdate);
    await req.afterVerify?.(updates);

    let esp: ApplyResult['esp'];
    if (espUpdate) {
      const hook: StepHook | undefined = req.beforeStep ? (n, name) => req.beforeStep!('esp', n, name) : undefined;
      const r = await installEsp(place, espUpdate, {
        ...(ctx.sourceDateEpoch !== undefined ? {sourceDateEpoch: ctx.sourceDateEpoch} : {}),
        ...(hook ? {beforeStep: hook} : {}),
        ...(req.defaultSlot ? {defaultSlot: req.defaultSlot} : {}),
        ...(ctx.log ? {log: ctx.log} : {}),
      });
      esp = {version: espUpdate.meta.version, grubDir: r.grubDir};
    }
    const done: Array<{slot: SlotName; version: string}> = [];
    for (const slot of slots) {
      const hook: StepHook | undefined = req.beforeStep ? (n, name) => req.beforeStep!(slot, n, name) : undefined;
      await installOs(place, slot, osUpdate!, {
        tryOnce,
        ...(ctx.sourceDateEpoch !== undefined ? {sourceDateEpoch: ctx.sourceDateEpoch} : {}),
        ...(hook ? {beforeStep: hook} : {}),
        tmpDir: ctx.tmpDir,
        ...(ctx.log ? {log: ctx.log} : {}),
      });
      done.push({slot, version: osUpdate!.meta.version});
    }
    if (req.defaultSlot) {
      await setDefault(place, req.defaultSlot, {pubkey: ctx.pubkey});
      ctx.log?.(`default boot slot: ${slotLabel(req.defaultSlot)}`);
    }
    return {slots: done, esp, tryOnce: tryOnce ? slots[0] : undefined};
  } finally {
    for (const u of updates) await u.cleanup();
  }
}
