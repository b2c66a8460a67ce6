import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {slotLabel, type SlotName} from '../boot/grub-cfg.js';
import {PsyError} from '../errors.js';
import {readEspEnv, setTrySlot} from './boot-env.js';
import type {VerifiedUpdate} from './fetch-update.js';
import {assertNotMounted, espVolume, type Place} from './place.js';
import {dropCachedReads, flushPath} from './region.js';
import {RECORD_MANIFEST, RECORD_SIGNATURE, type SlotManifest} from './slot-record.js';
import {checkSlotFiles, checkSlotFits, invalidateSlot, makeSlotFs, writeSlotFiles} from './slot-fs.js';
import {resolveBoot, type EspEnvFiles} from '../boot/resolve.js';
import {ENV_TRY} from '../boot/grub-cfg.js';
import {readGrubEnvTolerant} from '../boot/grubenv.js';

/**
 * The numbered write steps of an OS apply, in order. A power cut between any two leaves
 * a machine that boots a slot whose content verifies (test/upgrade-fault-injection).
 */
export const OS_STEPS = [
  'clear-try', // 1. the target is no longer a pending try (one small env write, if it was)
  'invalidate', // 2. zero the slot's superblock: its label is gone, nothing can boot it
  'write', // 3. the complete filesystem (mke2fs -d)
  'flush', // 4. fsync the device or image
  'read-back', // 5. every member read back through the filesystem and hashed
  'record', // 6. signature + manifest written onto the slot, flushed
  'try-once', // 7. one small env write: boot the new slot once
] as const;
export type OsStep = (typeof OS_STEPS)[number];

/** Called before each step (1-based); tests throw from it to cut the power there. */
export type StepHook = (step: number, name: string) => void | Promise<void>;

export interface InstallOsOptions {
  readonly sourceDateEpoch?: number;
  /** Set the new slot as the one to try once (a live node's apply); else leave the boot choice. */
  readonly tryOnce: boolean;
  readonly beforeStep?: StepHook;
  readonly tmpDir?: string;
  readonly log?: (line: string) => void;
}

/** Refuses targets that would take away the slot this machine falls back to. */
export async function checkOsTarget(place: Place, slot: SlotName, env?: EspEnvFiles): Promise<void> {
  const label = slotLabel(slot);
  if (place.booted === slot) throw new PsyError('busy', `${label} is the booted slot; apply to the other one (nonbooted)`);
  // a running node, or an image said to be booted (--disk IMG --booted B), keeps the slot it falls back to
  if (place.kind === 'live' || place.booted !== undefined) {
    const res = resolveBoot(env ?? (await readEspEnv(espVolume(place, false))));
    if (res.knownGood === slot) {
      throw new PsyError('busy', `${label} is the known-good default slot; the booted slot has not been marked good yet (run neuralupgrade mark-good first)`);
    }
  }
  assertNotMounted(place, place.slots[slot], label);
}

/**
 * Everything that can refuse an OS apply to `slot`, read-only: the target (not booted, not
 * the known-good default, not mounted) and whether the ostar's members fit the slot.
 * `apply` runs it for every target before the first write anywhere.
 */
export async function checkOsApply(place: Place, slot: SlotName, update: VerifiedUpdate, env?: EspEnvFiles): Promise<void> {
  if (update.meta.kind !== 'os') throw new PsyError('wrong-type', `${update.source} is not an OS update`);
  await checkOsTarget(place, slot, env);
  checkSlotFits(
    place.slots[slot],
    slotLabel(slot),
    update.source,
    update.members.map((m) => m.size),
  );
}

/**
 * Writes a verified ostar into a slot: mark unbootable, write whole, flush, read back and
 * hash, record version + signature, then (tryOnce) one small write to try it once.
 */
export async function installOs(place: Place, slot: SlotName, update: VerifiedUpdate, options: InstallOsOptions): Promise<SlotManifest> {
  const esp = espVolume(place, options.tryOnce);
  // read once: for the target check and for clearing a pending try (mtools runs cost)
  const env = await readEspEnv(esp);
  await checkOsApply(place, slot, update, env);
  const label = slotLabel(slot);
  const region = place.slots[slot];
  const epoch = options.sourceDateEpoch ?? 0;
  const log = options.log ?? (() => {});
  const stage = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'neuralupgrade-slot-'));
  const staged = [...update.members].sort((a, b) => (a.name < b.name ? -1 : 1));
  let n = 0;
  const step = async (name: OsStep) => {
    n++;
    if (OS_STEPS[n - 1] !== name) throw new Error(`step order: ${name} at ${n}`);
    await options.beforeStep?.(n, name);
    log(`${label}: ${n}/${OS_STEPS.length} ${name}`);
  };
  try {
    await step('clear-try');
    if (env.primary !== undefined && readGrubEnvTolerant(env.primary)?.get(ENV_TRY) === label) await setTrySlot(esp, undefined);

    await step('invalidate');
    invalidateSlot(region);

    await step('write');
    await makeSlotFs(region, {
      label,
      sourceDir: update.contentDir,
      memory: staged.flatMap((m) => (m.data !== undefined ? [{name: m.name, data: m.data}] : [])),
      sourceDateEpoch: epoch,
      tmpDir: stage,
    });

    await step('flush');
    flushPath(region.path);

    await step('read-back');
    // on a device, read what the disk holds rather than the cached writes
    await dropCachedReads(region.path);
    // Every member is read back through the slot's filesystem and compared byte for byte
    // with its staged copy, whose sha256 was taken from the verified stream: equal bytes
    // have that hash, which is what the record carries (one sha256 pass, not two).
    const back = await checkSlotFiles(
      region,
      staged.map((m) => (m.data !== undefined ? {name: m.name, bytes: m.data} : {name: m.name, hostFile: m.path!})),
      {hash: false},
    );
    const members = staged.map((m) => {
      const got = back.get(m.name);
      if (!got || got.same !== true || got.size !== m.size) {
        throw new PsyError('slot-verify-failed', `${label}: ${m.name} read back differs from what was verified; the slot stays unbootable`);
      }
      return {name: m.name, size: m.size, sha256: m.sha256};
    });
    const manifest: SlotManifest = {version: update.meta.version, filename: update.meta.filename, members};

    await step('record');
    await writeFile(join(stage, 'sig'), update.signatureText);
    await writeFile(join(stage, 'manifest'), JSON.stringify(manifest, null, 2) + '\n');
    await writeSlotFiles(
      region,
      [
        // the manifest first: a signature alone is the original psyopsOS's record (slot-record.ts)
        {name: RECORD_MANIFEST, hostFile: join(stage, 'manifest')},
        {name: RECORD_SIGNATURE, hostFile: join(stage, 'sig')},
      ],
      epoch,
    );
    flushPath(region.path);

    await step('try-once');
    if (options.tryOnce) await setTrySlot(esp, slot);
    return manifest;
  } finally {
    await rm(stage, {recursive: true, force: true});
  }
}
