import {lstat, open, readlink} from 'node:fs/promises';
import {join, posix} from 'node:path';
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
      else if (type === 3) interpreter = buf.subarray(offset, offset + filesz).toString('latin1').replace(/\0.*$/s, '');
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

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Follow a path's symlinks inside `root` (absolute link targets stay inside it).
 * Returns every path on the way (links first, the final file last), rooted at '/'.
 */
export async function resolveInRoot(root: string, path: string): Promise<string[]> {
  const chain: string[] = [];
  let cur = posix.normalize(path);
  for (let hops = 0; hops < 40; hops++) {
    // Resolve symlinked parent folders first (e.g. /lib64 -> /lib).
    const parts = cur.split('/').filter(Boolean);
    let prefix = '/';
    for (let i = 0; i < parts.length - 1; i++) {
      const next = posix.join(prefix, parts[i]!);
      const st = await lstat(join(root, next)).catch(() => undefined);
      if (st?.isSymbolicLink()) {
        const t = await readlink(join(root, next));
        chain.push(next);
        prefix = t.startsWith('/') ? posix.normalize(t) : posix.join(prefix, t);
      } else prefix = next;
    }
    cur = posix.join(prefix, parts[parts.length - 1] ?? '');
    const st = await lstat(join(root, cur)).catch(() => undefined);
    if (!st) throw new PsyError('missing-file', `${path} is not in the root folder (looked for ${cur})`);
    chain.push(cur);
    if (!st.isSymbolicLink()) return chain;
    const t = await readlink(join(root, cur));
    cur = t.startsWith('/') ? posix.normalize(t) : posix.join(posix.dirname(cur), t);
  }
  throw new PsyError('symlink-loop', `${path}: too many levels of symbolic links in the root folder`);
}

/**
 * The files (and symlinks leading to them) that `paths` need inside `root`, including
 * the paths themselves, their interpreters and their DT_NEEDED closure. Sorted.
 */
export async function elfClosure(root: string, paths: readonly string[]): Promise<string[]> {
  const result = new Set<string>();
  const queue = [...paths];
  const done = new Set<string>();
  while (queue.length) {
    const p = queue.shift()!;
    if (done.has(p)) continue;
    done.add(p);
    const chain = await resolveInRoot(root, p);
    for (const c of chain) result.add(c);
    const real = chain[chain.length - 1]!;
    const deps = await readElfDeps(join(root, real));
    if (!deps) continue;
    if (deps.interpreter) queue.push(deps.interpreter);
    for (const lib of deps.needed) {
      let found: string | undefined;
      for (const d of libraryDirs) {
        if (await exists(join(root, d, lib))) {
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
