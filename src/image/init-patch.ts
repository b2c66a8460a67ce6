import {readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {writeFileAtomic} from '../fs/atomic-write.js';
import {runTool, runToolExit, tailOf, type ToolRunner} from '../tools/run.js';

/**
 * The psyopsOS init patch in both directions: apply alpine/initramfs-init.patch to
 * Alpine's upstream initramfs-init (a patch that no longer applies, or is already
 * applied, fails with the hunk in the message), and regenerate the patch from an edited
 * patched copy.
 */

export const patchLabels = {orig: 'initramfs-init.orig', patched: 'initramfs-init.patched'} as const;

/** The first rejected hunk of a .rej file, squeezed onto one line. */
export function firstRejectedHunk(rej: string): string {
  const lines = rej.split('\n');
  const start = lines.findIndex((l) => l.startsWith('@@'));
  if (start === -1) return '';
  const hunk: string[] = [lines[start]!];
  for (const l of lines.slice(start + 1)) {
    if (l.startsWith('@@')) break;
    if (l.startsWith('+') || l.startsWith('-')) hunk.push(l.trimEnd());
    if (hunk.length >= 6) break;
  }
  return hunk.join(' | ');
}

/**
 * Whether the first hunk of a .rej file is already in `text`: its new side (context and
 * added lines, in order) is there as it stands and its old side is not.
 */
export function firstHunkApplied(rej: string, text: string): boolean {
  const lines = rej.replace(/\n$/, '').split('\n');
  const start = lines.findIndex((l) => l.startsWith('@@'));
  if (start === -1) return false;
  const before: string[] = [];
  const after: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (l.startsWith('@@') || l.startsWith('--- ')) break;
    if (l.startsWith('\\')) continue; // "\ No newline at end of file"
    if (l[0] !== '+') before.push(l.slice(1));
    if (l[0] !== '-') after.push(l.slice(1));
  }
  const have = text.split('\n');
  const contains = (seq: string[]) => {
    if (seq.length === 0) return false;
    for (let i = 0; i + seq.length <= have.length; i++) if (seq.every((l, k) => have[i + k] === l)) return true;
    return false;
  };
  return contains(after) && !contains(before);
}

/**
 * Applies the patch forward only (`--forward`): GNU patch in batch mode would otherwise
 * take a patch it finds already applied for a reversed one and silently undo it. A hunk
 * that does not apply, or is already there, fails with that hunk quoted on one line.
 */
export async function applyInitPatch(orig: string, patch: string, out: string, scratch: string, run: ToolRunner = runTool, patchName = patch): Promise<void> {
  const rej = join(scratch, 'initramfs-init.rej');
  try {
    await run('patch', ['--batch', '--forward', '--silent', '--fuzz=0', '--no-backup-if-mismatch', '-o', out, '-r', rej, orig, patch], {captureStdout: true});
  } catch (err) {
    if ((err as {code?: string}).code === 'missing-tool') throw err;
    const rejected = await readFile(rej, 'utf8').catch(() => '');
    const hunk = firstRejectedHunk(rejected);
    if (hunk && firstHunkApplied(rejected, await readFile(orig, 'utf8'))) {
      throw new PsyError(
        'patch-already-applied',
        `${patchName} is already applied, in whole or in part, to the upstream initramfs-init (refused, not reversed); applied hunk: ${hunk}`,
      );
    }
    const why = hunk ? `rejected hunk: ${hunk}` : (err as Error).message;
    throw new PsyError('patch-rejected', `${patchName} does not apply to the upstream initramfs-init; ${why}`);
  }
}

/** Unified diff of the upstream init against the edited copy (the patch's new content). */
export async function makeInitPatch(orig: string, patched: string): Promise<string> {
  // diff exits 1 when the files differ: only 2 and above are failures
  const res = await runToolExit('diff', ['-u', '--label', patchLabels.orig, '--label', patchLabels.patched, orig, patched]);
  if (res.code === 0) return '';
  if (res.code !== 1) throw new PsyError('tool-failed', `diff ${orig} ${patched} failed: ${tailOf(res.stderr.toString('utf8'))}`);
  return res.stdout.toString('utf8');
}

export async function writeInitPatch(orig: string, patched: string, patchOut: string): Promise<boolean> {
  const text = await makeInitPatch(orig, patched);
  const before = await readFile(patchOut, 'utf8').catch(() => undefined);
  if (before === text) return false;
  await writeFileAtomic(patchOut, text);
  return true;
}
