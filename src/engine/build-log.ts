/**
 * The build log people read (ninja keeps one in `.ninja_log`): `build.log` in the state
 * folder, a line per step that succeeded, appended when its outputs are in place:
 *
 *     # psy build log v1: start_ms end_ms duration_ms target key (tab-separated)
 *     1764750000123	1764750004567	4444	squashfs	8f3a...
 *
 * Times are milliseconds since the Unix epoch. It is advisory: staleness is decided from
 * the binary state log (state-log.ts), never from this file, so a failed append only warns.
 */
import {closeSync, fstatSync, openSync, writeSync} from 'node:fs';
import {join} from 'node:path';

export const BUILD_LOG_HEADER = '# psy build log v1: start_ms end_ms duration_ms target key (tab-separated)\n';

export class BuildLogFile {
  readonly path: string;
  #failed = false;
  /** Open from the first append until close(): one write per step. */
  #fd: number | undefined;

  constructor(
    stateDir: string,
    private readonly warn: (message: string) => void,
  ) {
    this.path = join(stateDir, 'build.log');
  }

  append(step: {readonly target: string; readonly key: string; readonly start: number; readonly end: number}): void {
    if (this.#failed) return;
    const line = `${step.start}\t${step.end}\t${step.end - step.start}\t${step.target}\t${step.key}\n`;
    try {
      if (this.#fd === undefined) {
        this.#fd = openSync(this.path, 'a');
        if (fstatSync(this.#fd).size === 0) writeSync(this.#fd, BUILD_LOG_HEADER);
      }
      writeSync(this.#fd, line);
    } catch (err) {
      this.#failed = true;
      this.close();
      this.warn(`could not append to ${this.path} (${(err as NodeJS.ErrnoException).code ?? String(err)}); step times are not logged in this build`);
    }
  }

  close(): void {
    if (this.#fd === undefined) return;
    try {
      closeSync(this.#fd);
    } catch {
      // nothing more to write
    }
    this.#fd = undefined;
  }
}
