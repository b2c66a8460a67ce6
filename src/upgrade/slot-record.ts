import {verifyTrustedComment} from '../sign/signature.js';
import type {PublicKey} from '../sign/keys.js';
import type {TrustedFields} from '../sign/trusted-comment.js';
import {parseUpdateComment, peekTrustedFields} from './update-meta.js';
import {hashSlotFiles, readSlotFile, slotFsLabel} from './slot-fs.js';
import type {Region} from './region.js';

/** Written into a slot after it was read back: the signature and the member hashes. */
export const RECORD_SIGNATURE = 'psyopsOS.tar.minisig';
export const RECORD_MANIFEST = 'psyopsOS.slot.json';

export interface SlotManifest {
  readonly version: string;
  readonly filename: string;
  readonly members: ReadonlyArray<{readonly name: string; readonly size: number; readonly sha256: string}>;
}

export type SlotCondition =
  /** No filesystem with the slot's label: never written, or being written. */
  | 'empty'
  /** A filesystem but no version record: an apply stopped before its end. */
  | 'incomplete'
  /** A record whose signature does not verify with the node's key. */
  | 'unsigned'
  /** Record present and signed (members not re-hashed). */
  | 'installed'
  /** Record signed and every member re-hashed equal. */
  | 'verified'
  /** Record signed but a member's bytes differ. */
  | 'corrupt';

export interface SlotState {
  readonly label: string;
  readonly condition: SlotCondition;
  readonly version?: string;
  readonly fields?: TrustedFields;
  readonly manifest?: SlotManifest;
  readonly detail?: string;
}

/**
 * Reads a slot's record. With `pubkey` the signature is authenticated; with
 * `verifyContent` every member is read back and hashed against the manifest.
 */
export async function readSlotState(r: Region, label: string, options: {pubkey?: PublicKey; verifyContent?: boolean} = {}): Promise<SlotState> {
  if (slotFsLabel(r) !== label) return {label, condition: 'empty'};
  const sig = await readSlotFile(r, RECORD_SIGNATURE);
  const man = await readSlotFile(r, RECORD_MANIFEST);
  if (sig === undefined) return {label, condition: 'incomplete', detail: 'no version record'};
  const text = sig.toString('utf8');
  const source = `${label}/${RECORD_SIGNATURE}`;
  let fields = peekTrustedFields(text, source);
  if (options.pubkey) {
    try {
      fields = parseUpdateComment(verifyTrustedComment(text, options.pubkey, {source}).trustedComment, source);
    } catch (err) {
      return {label, condition: 'unsigned', detail: (err as Error).message, ...(fields ? {fields} : {})};
    }
  }
  if (man === undefined) {
    // psy writes the manifest before the signature, so a signature alone is the record
    // the original psyopsOS leaves (the tarball's signature copied beside its files)
    if (fields?.['version'] === undefined) return {label, condition: 'incomplete', detail: 'no version record'};
    const detail = options.verifyContent ? 'record of the original psyopsOS: no member hashes to verify against' : 'record of the original psyopsOS';
    return {label, condition: 'installed', version: fields['version'], fields, detail};
  }
  let manifest: SlotManifest;
  try {
    manifest = JSON.parse(man.toString('utf8')) as SlotManifest;
  } catch {
    return {label, condition: 'incomplete', detail: 'unreadable manifest'};
  }
  const version = fields?.['version'];
  if (version !== manifest.version) return {label, condition: 'corrupt', detail: 'manifest and signature name different versions', manifest};
  const base = {label, version, manifest, ...(fields ? {fields} : {})};
  if (!options.verifyContent) return {...base, condition: 'installed'};
  const back = await hashSlotFiles(
    r,
    manifest.members.map((m) => m.name),
  );
  for (const m of manifest.members) {
    const got = back.get(m.name);
    if (!got || got.sha256 !== m.sha256 || got.size !== m.size) return {...base, condition: 'corrupt', detail: `${m.name} differs from the record`};
  }
  return {...base, condition: 'verified'};
}
