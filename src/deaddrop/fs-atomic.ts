import {randomBytes} from 'node:crypto';
import {copyFile, open, rename, rm, symlink, writeFile} from 'node:fs/promises';
import {basename, dirname, join} from 'node:path';
import {PRIVATE_PREFIX} from './layout.js';

/** A scratch name beside `path`, so the final rename stays within one filesystem. */
export function scratchPath(path: string): string {
  return join(dirname(path), `${PRIVATE_PREFIX}tmp-${randomBytes(6).toString('hex')}-${basename(path)}`);
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

/** Copies `src` to `dst` so that `dst` is either absent/old or complete, never partial. */
export async function copyFileAtomic(src: string, dst: string): Promise<void> {
  const tmp = scratchPath(dst);
  try {
    await copyFile(src, tmp);
    await fsyncPath(tmp);
    await rename(tmp, dst);
  } catch (err) {
    await rm(tmp, {force: true});
    throw err;
  }
  await fsyncDir(dirname(dst));
}

export async function writeFileAtomic(dst: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = scratchPath(dst);
  try {
    await writeFile(tmp, data, {mode, flush: true});
    await rename(tmp, dst);
  } catch (err) {
    await rm(tmp, {force: true});
    throw err;
  }
  await fsyncDir(dirname(dst));
}

/** Points the symlink `link` at `target`; readers see the old or the new link, never none. */
export async function replaceSymlink(target: string, link: string): Promise<void> {
  const tmp = scratchPath(link);
  try {
    await symlink(target, tmp);
    await rename(tmp, link);
  } catch (err) {
    await rm(tmp, {force: true});
    throw err;
  }
  await fsyncDir(dirname(link));
}
