import {randomBytes} from 'node:crypto';
import {closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync} from 'node:fs';
import {copyFile, open, rename, rm, symlink, writeFile} from 'node:fs/promises';
import {basename, dirname, join} from 'node:path';

/**
 * The one way psy replaces a file: write a scratch file beside it, flush it, rename it
 * over the old one, flush the directory. Readers see the old file or the new one, never
 * a part; a failure removes the scratch file and leaves the old file as it was.
 */

/** Scratch names start with this: hidden, and (in a deaddrop replica) never published. */
export const SCRATCH_PREFIX = '.psy-tmp-';

/** A scratch name beside `path`, so the final rename stays within one filesystem. */
export function scratchPath(path: string): string {
  return join(dirname(path), `${SCRATCH_PREFIX}${randomBytes(6).toString('hex')}-${basename(path)}`);
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Makes a rename durable: the directory entry itself is flushed. */
export async function fsyncDir(dir: string): Promise<void> {
  await fsyncPath(dir).catch(() => undefined);
}

function fsyncDirSync(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some filesystems refuse fsync on a directory; the rename itself is still atomic
  }
}

/** Moves a finished scratch file into place (or removes it when `make` failed). */
async function settle(tmp: string, dst: string, make: () => Promise<void>): Promise<void> {
  try {
    await make();
    await rename(tmp, dst);
  } catch (err) {
    await rm(tmp, {force: true});
    throw err;
  }
  await fsyncDir(dirname(dst));
}

export async function writeFileAtomic(dst: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = scratchPath(dst);
  await settle(tmp, dst, () => writeFile(tmp, data, {mode, flush: true}));
}

/** writeFileAtomic for synchronous callers. */
export function writeFileAtomicSync(dst: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = scratchPath(dst);
  try {
    writeFileSync(tmp, data, {mode, flush: true});
    renameSync(tmp, dst);
  } catch (err) {
    rmSync(tmp, {force: true});
    throw err;
  }
  fsyncDirSync(dirname(dst));
}

/** Copies `src` to `dst` so that `dst` is either absent/old or complete, never partial. */
export async function copyFileAtomic(src: string, dst: string): Promise<void> {
  const tmp = scratchPath(dst);
  await settle(tmp, dst, async () => {
    await copyFile(src, tmp);
    await fsyncPath(tmp);
  });
}

/** Points the symlink `link` at `target`; readers see the old or the new link, never none. */
export async function replaceSymlink(target: string, link: string): Promise<void> {
  const tmp = scratchPath(link);
  await settle(tmp, link, () => symlink(target, tmp));
}
