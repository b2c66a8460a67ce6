import {recordLines, type IndexRecord} from './package-meta.js';
import type {ScriptName} from './apk-package.js';
import {writeTar, type TarWriteEntry} from '../tar/index.js';

/** A path one installed package owns, as the installed database lists it. */
export interface InstalledFile {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  /** `Q1` + base64 SHA-1 of the content (of the target string for symlinks). */
  readonly checksum: string;
}

export interface InstalledDir {
  readonly path: string;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  /** Files in this directory, in install order; removed when another package overwrote them. */
  readonly files: Map<string, InstalledFile>;
}

export interface InstalledPackage {
  readonly record: IndexRecord;
  readonly dirs: Map<string, InstalledDir>;
  readonly scripts: ReadonlyMap<ScriptName, Buffer>;
  readonly triggers: readonly string[];
}

/**
 * lib/apk/db/installed in apk-tools' format: the index header lines, `r:`/`q:`, then
 * `F:dir` (+ `M:uid:gid:mode` unless 0:0:755) and for each file `R:name`
 * (+ `a:uid:gid:mode` unless 0:0:644) and `Z:Q1…`. Records end with a blank line and
 * are sorted by name, as apk 2.14 writes them.
 */
export function formatInstalledDb(pkgs: readonly InstalledPackage[]): string {
  const out: string[] = [];
  const sorted = [...pkgs].sort((a, b) => (a.record.name < b.record.name ? -1 : a.record.name > b.record.name ? 1 : 0));
  for (const p of sorted) {
    const lines = recordLines(p.record);
    if (p.record.replaces.length) lines.push(`r:${p.record.replaces.join(' ')}`);
    if (p.record.replacesPriority) lines.push(`q:${p.record.replacesPriority}`);
    for (const d of p.dirs.values()) {
      lines.push(`F:${d.path}`);
      if (d.uid !== 0 || d.gid !== 0 || d.mode !== 0o755) lines.push(`M:${d.uid}:${d.gid}:${d.mode.toString(8)}`);
      for (const f of d.files.values()) {
        lines.push(`R:${f.name}`);
        if (f.uid !== 0 || f.gid !== 0 || f.mode !== 0o644) lines.push(`a:${f.uid}:${f.gid}:${f.mode.toString(8)}`);
        lines.push(`Z:${f.checksum}`);
      }
    }
    out.push(lines.join('\n') + '\n\n');
  }
  return out.join('');
}

/** scripts.tar: `<name>-<ver>.<Q1>.<script>` entries, 0755, mtime = build date, install order. */
export function formatScriptsTar(pkgs: readonly InstalledPackage[], order: readonly ScriptName[]): Buffer {
  const entries: TarWriteEntry[] = [];
  for (const p of pkgs) {
    for (const name of order) {
      const body = p.scripts.get(name);
      if (!body) continue;
      entries.push({
        path: `${p.record.name}-${p.record.version}.${p.record.checksum}.${name}`,
        type: 'file',
        mode: 0o755,
        uname: 'root',
        gname: 'root',
        mtime: p.record.buildDate,
        data: body,
      });
    }
  }
  return writeTar(entries, {format: 'gnu', recordSize: 10240, fullWidthNumbers: true});
}

/** triggers: `Q1… glob glob…` per package with triggers, install order. */
export function formatTriggers(pkgs: readonly InstalledPackage[]): string {
  return pkgs
    .filter((p) => p.triggers.length > 0)
    .map((p) => `${p.record.checksum} ${p.triggers.join(' ')}\n`)
    .join('');
}
