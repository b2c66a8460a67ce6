import {lstat, open} from 'node:fs/promises';
import {join, posix} from 'node:path';
import {resolveInRoot} from '../apk/root-path.js';
import {PsyError} from '../errors.js';

/**
 * What an ELF binary needs to run: its interpreter (PT_INTERP) and its DT_NEEDED
 * libraries, resolved inside a root folder the way musl's loader would, and the
 * closure of that over a list of files. Used to put busybox & co. into an initramfs
 * with exactly the shared libraries they need.
 */

export interface ElfDeps {
  readonly interpreter?: string;
  readonly needed: readonly string[];
}

/** Parse a 64-bit little-endian ELF file; undefined when the file is not ELF. */
export async function readElfDeps(path: string): Promise<ElfDeps | undefined> {
  const fh = await open(path, 'r');
  try {
    const {size} = await fh.stat();
    if (size < 64) return undefined;
    const buf = Buffer.alloc(size);
    await fh.read(buf, 0, size, 0);
    if (buf.readUInt32BE(0) !== 0x7f454c46) return undefined;
    if (buf[4] !== 2 || buf[5] !== 1) throw new PsyError('elf-unsupported', `${path}: only 64-bit little-endian ELF is supported`);
    const phoff = Number(buf.readBigUInt64LE(0x20));
    const phentsize = buf.readUInt16LE(0x36);
    const phnum = buf.readUInt16LE(0x38);
    const loads: {vaddr: number; offset: number; filesz: number}[] = [];
    let interpreter: string | undefined;
    let dyn: {offset: number; size: number} | undefined;
    for (let i = 0; i < phnum; i++) {
      const o = phoff + i * phentsize;
      const type = buf.readUInt32LE(o);
      const offset = Number(buf.readBigUInt64LE(o + 8));
      const vaddr = Number(buf.readBigUInt64LE(o + 16));
      const filesz = Number(buf.readBigUInt64LE(o + 32));
      if (type === 1) loads.push({vaddr, offset, filesz});
      else if (type === 2) dyn = {offset, size: filesz};
      else if (type === 3)
        interpreter = buf
          .subarray(offset, offset + filesz)
          .toString('latin1')
          .replace(/\0.*$/s, '');
    }
    const needed: string[] = [];
    if (dyn) {
      const neededOffsets: number[] = [];
      let strtab = -1;
      for (let o = dyn.offset; o + 16 <= dyn.offset + dyn.size; o += 16) {
        const tag = Number(buf.readBigInt64LE(o));
        const val = Number(buf.readBigUInt64LE(o + 8));
        if (tag === 0) break;
        if (tag === 1) neededOffsets.push(val);
        if (tag === 5) strtab = val;
      }
      if (neededOffsets.length && strtab >= 0) {
        const seg = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.filesz);
        if (!seg) throw new PsyError('elf-unsupported', `${path}: string table outside the loaded segments`);
        const base = strtab - seg.vaddr + seg.offset;
        for (const off of neededOffsets) {
          const start = base + off;
          const end = buf.indexOf(0, start);
          needed.push(buf.subarray(start, end).toString('latin1'));
        }
      }
    }
    return interpreter === undefined ? {needed} : {interpreter, needed};
  } finally {
    await fh.close();
  }
}

/** musl's default library path. */
export const libraryDirs = ['/lib', '/usr/local/lib', '/usr/lib'];

/**
 * The files (and symlinks leading to them) that `paths` need inside `root`, including
 * the paths themselves, their interpreters and their DT_NEEDED closure. Sorted. Links
 * are followed inside the root (resolveInRoot), never into the build host.
 */
export async function elfClosure(root: string, paths: readonly string[]): Promise<string[]> {
  const result = new Set<string>();
  const queue = [...paths];
  const done = new Set<string>();
  while (queue.length) {
    const p = queue.shift()!;
    if (done.has(p)) continue;
    done.add(p);
    const r = await resolveInRoot(root, p, 'initramfs');
    if (r === undefined) throw new PsyError('missing-file', `${p} is not in the root folder`);
    for (const c of [...r.links, r.path]) result.add(c);
    if (!r.stat.isFile()) continue;
    const deps = await readElfDeps(r.host);
    if (!deps) continue;
    if (deps.interpreter) queue.push(deps.interpreter);
    for (const lib of deps.needed) {
      let found: string | undefined;
      for (const d of libraryDirs) {
        // Found when the folder has the name (a dangling link is then named when followed).
        const folder = await resolveInRoot(root, d, 'initramfs');
        if (folder?.stat.isDirectory() && !lib.includes('/') && (await lstat(join(folder.host, lib)).catch(() => undefined))) {
          found = posix.join(d, lib);
          break;
        }
      }
      if (!found) throw new PsyError('missing-library', `${p} needs ${lib}, which is not in the root folder (${libraryDirs.join(', ')})`);
      queue.push(found);
    }
  }
  return [...result].sort();
}
