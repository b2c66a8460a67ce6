import {readFileSync, writeFileSync} from 'node:fs';
import {PsyError} from '../errors.js';

/**
 * The ownership and mode of every path of an installed root, kept beside the tree
 * because the tree itself is written by an unprivileged user (everything on disk is
 * owned by whoever ran psy, and modes are widened to u+rw so later steps can read and
 * replace files). A filesystem builder applies it, e.g. as a mksquashfs pseudo-file:
 *
 *   file/directory/symlink/hardlink → `<path> m <mode> <uid> <gid>`
 *   char/block                       → `<path> c|b <mode> <uid> <gid> <major> <minor>`
 *
 * Format (JSON, `rootfs-manifest.json`):
 * ```
 * {"format": "psy-rootfs-manifest", "version": 1,
 *  "entries": [{"path": "etc/shadow", "type": "file", "mode": 416, "uid": 0, "gid": 42,
 *               "mtime": 1714981135}, ...]}
 * ```
 * - `path` is relative to the root, no leading `/`, never `..`; "" is the root itself.
 * - `type` is file | directory | symlink | hardlink | char | block | fifo.
 * - `mode` is the permission bits (07777) as a number; symlinks are 0o777.
 * - `target`: symlink target as stored, or for a hardlink the root-relative path it
 *   shares its inode with.
 * - `major`/`minor`: device numbers for char/block.
 * - `onDisk` is false for entries that exist only in the manifest (device nodes, which
 *   need root to create): the filesystem builder must create them.
 * - Entries are sorted by path; every path that exists in the tree is listed.
 */
export type ManifestEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface ManifestEntry {
  readonly path: string;
  readonly type: ManifestEntryType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly mtime: number;
  readonly target?: string;
  readonly major?: number;
  readonly minor?: number;
  readonly onDisk: boolean;
}

export interface RootfsManifest {
  readonly format: 'psy-rootfs-manifest';
  readonly version: 1;
  readonly entries: readonly ManifestEntry[];
}

export function manifestFromMap(entries: ReadonlyMap<string, ManifestEntry>): RootfsManifest {
  const list = [...entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {format: 'psy-rootfs-manifest', version: 1, entries: list};
}

export function writeManifest(path: string, manifest: RootfsManifest): void {
  const lines = manifest.entries.map((e) => '  ' + JSON.stringify(e));
  writeFileSync(path, `{"format": "psy-rootfs-manifest", "version": 1, "entries": [\n${lines.join(',\n')}\n]}\n`);
}

export function readManifest(path: string): RootfsManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new PsyError('manifest', `rootfs manifest ${path} cannot be read (${(err as Error).message})`);
  }
  const m = parsed as Partial<RootfsManifest>;
  if (m.format !== 'psy-rootfs-manifest' || m.version !== 1 || !Array.isArray(m.entries)) {
    throw new PsyError('manifest', `${path} is not a psy rootfs manifest (version 1)`);
  }
  return m as RootfsManifest;
}

/**
 * The manifest as mksquashfs pseudo definitions (`-pf file`): `m` lines restore mode and
 * ownership of what is on disk, `c`/`b` lines create device nodes. Paths with spaces
 * are quoted as mksquashfs expects.
 */
export function manifestToPseudoFile(manifest: RootfsManifest): string {
  const out: string[] = [];
  for (const e of manifest.entries) {
    const p = e.path === '' ? '/' : '/' + e.path;
    const q = /[\s"\\]/.test(p) ? `"${p.replace(/(["\\])/g, '\\$1')}"` : p;
    const mode = e.mode.toString(8).padStart(4, '0');
    switch (e.type) {
      case 'char':
      case 'block':
        out.push(`${q} ${e.type === 'char' ? 'c' : 'b'} ${mode} ${e.uid} ${e.gid} ${e.major ?? 0} ${e.minor ?? 0}`);
        break;
      case 'symlink':
        // mksquashfs ignores modes of symlinks; ownership still matters.
        out.push(`${q} m 0777 ${e.uid} ${e.gid}`);
        break;
      case 'file':
      case 'directory':
      case 'hardlink':
      case 'fifo':
        out.push(`${q} m ${mode} ${e.uid} ${e.gid}`);
        break;
      default: {
        const never: never = e.type;
        void never;
      }
    }
  }
  return out.join('\n') + '\n';
}
