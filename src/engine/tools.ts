/**
 * Versions of the external tools a target runs; they join its action key. A version is
 * asked for once per executable and remembered in the state log against the
 * executable's stat data, so a no-op build starts no process.
 */
import {statSync} from 'node:fs';
import {delimiter, isAbsolute, join} from 'node:path';
import {PsyError} from '../errors.js';
import type {ToolSpec} from './rule.js';
import type {StateLog} from './state-log.js';

export class ToolVersions {
  readonly #log: StateLog;
  readonly #path: string;
  readonly #memo = new Map<string, string>();
  readonly #used = new Map<string, [number, number, number, number]>();

  constructor(log: StateLog, envPath: string | undefined) {
    this.#log = log;
    this.#path = envPath ?? '';
  }

  /** `command=version` lines, sorted by command; throws when a tool is missing. */
  describe(target: string, tools: readonly ToolSpec[]): string {
    if (tools.length === 0) return '';
    const lines = tools.map((t) => `${t.command}=${this.version(target, t)}`);
    return lines.sort().join('\n');
  }

  version(target: string, tool: ToolSpec): string {
    const memoKey = `${tool.command}\0${tool.versionArgs.join('\0')}`;
    const memo = this.#memo.get(memoKey);
    if (memo !== undefined) return memo;
    const exe = this.resolve(tool.command);
    if (exe === undefined) {
      const pkg = tool.debianPackage === undefined ? '' : ` (install the Debian package ${tool.debianPackage})`;
      throw new PsyError('command-not-found', `target "${target}": tool "${tool.command}" not found on PATH${pkg}`);
    }
    const st = statSync(exe.path);
    this.#used.set(exe.path, [st.size, st.mtimeMs, st.ctimeMs, st.ino]);
    const rec = this.#log.tools.get(memoKey + '\0' + exe.path);
    let version: string;
    if (rec !== undefined && rec.size === st.size && rec.mtimeMs === st.mtimeMs && rec.ino === st.ino) {
      version = rec.version;
    } else {
      // child_process is loaded only when a version is not cached (never on a no-op).
      const {spawnSync} = process.getBuiltinModule('node:child_process');
      const r = spawnSync(exe.path, [...tool.versionArgs], {encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe']});
      const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
      version =
        text
          .split('\n')
          .map((l) => l.trim())
          .find((l) => l.length > 0) ?? 'unknown';
      this.#log.putTool({path: memoKey + '\0' + exe.path, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, version});
    }
    this.#memo.set(memoKey, version);
    return version;
  }

  /** Executables whose versions this run used, with the stat data it saw. */
  executables(): Array<[string, [number, number, number, number]]> {
    return [...this.#used];
  }

  resolve(command: string): {path: string} | undefined {
    const candidates =
      command.includes('/') || isAbsolute(command)
        ? [command]
        : this.#path
            .split(delimiter)
            .filter((d) => d.length > 0)
            .map((d) => join(d, command));
    for (const c of candidates) {
      const st = statSync(c, {throwIfNoEntry: false});
      if (st?.isFile() === true && (st.mode & 0o111) !== 0) return {path: c};
      // A program appearing earlier on PATH later would change which one runs.
      if (st === undefined) this.#used.set(c, [-1, -1, -1, -1]);
    }
    return undefined;
  }
}
