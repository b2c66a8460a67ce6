/**
 * Build progress for people. On a terminal: one line rewritten in place
 * (`[done/total] running: target (12s)`), refreshed every second so long steps show
 * their elapsed time, paused while a console-pool step owns the terminal, and left on
 * screen at the end (ninja's way). Elsewhere: one plain line per started step. Lines name
 * the target as `psy explain` takes it (`[2/5] squashfs: the root filesystem`).
 *
 * A step's output is printed whole when it ends, under a line naming its target unless
 * that step's own line is the last one printed: with steps running side by side, output
 * never appears under another step's line. A failure prints the target, the command or
 * rule, the reason and the output.
 */
import type {BuildEvent, BuildLogger} from '../engine/events.js';

export interface StatusOptions {
  readonly out: NodeJS.WritableStream;
  readonly tty: boolean;
  readonly verbose: boolean;
  /** Terminal width for eliding the status line. */
  readonly columns?: number;
}

export class StatusPrinter implements BuildLogger {
  readonly #o: StatusOptions;
  #total = 0;
  #done = 0;
  readonly #running = new Map<string, number>();
  #lineShown = false;
  #timer: NodeJS.Timeout | undefined;
  #consoleBusy = false;
  /** The target whose line was printed last (its output needs no heading). */
  #lastLine: string | undefined;
  /** The last step that started, for the terminal's final line. */
  #lastStep: string | undefined;
  ranCount = 0;
  freshCount = 0;

  constructor(options: StatusOptions) {
    this.#o = options;
  }

  event(e: BuildEvent): void {
    switch (e.type) {
      case 'plan':
        this.#total = e.total;
        return;
      case 'fresh':
        this.#done++;
        this.freshCount++;
        if (this.#o.verbose) this.#print(`up to date: ${e.target}`);
        return;
      case 'start':
        this.#running.set(e.target, Date.now());
        this.#lastStep = e.target;
        if (e.console) {
          this.#clear();
          this.#consoleBusy = true;
        }
        if (!this.#o.tty || this.#o.verbose || e.console) {
          const why = this.#o.verbose && e.reason !== '' ? ` (${e.reason})` : '';
          this.#print(`[${this.#done + this.#running.size}/${this.#total}] ${stepName(e.target, e.description)}${why}`, e.target);
        } else {
          this.#redraw();
        }
        this.#ensureTimer();
        return;
      case 'would-run':
        this.#print(`would run ${e.target}: ${e.reason}`);
        if (this.#o.verbose) this.#print(`  ${e.action}`);
        return;
      case 'finish':
        this.#done++;
        this.ranCount++;
        this.#running.delete(e.target);
        if (e.console) this.#consoleBusy = false;
        if (e.output.length > 0) {
          const heading = this.#lastLine === e.target ? '' : `output of ${e.target}:\n`;
          this.#print(heading + e.output.replace(/\n$/, ''), e.target);
        } else {
          this.#redraw();
        }
        return;
      case 'fail':
        this.#done++;
        this.#running.delete(e.target);
        if (e.console) this.#consoleBusy = false;
        this.#print(`FAILED: ${e.target}: ${e.message}`, e.target);
        this.#print(`  ${e.action}`, e.target);
        if (e.output.length > 0) this.#print(e.output.replace(/\n$/, ''), e.target);
        return;
      case 'skip':
        this.#done++;
        if (this.#o.verbose) this.#print(`skipped ${e.target}: ${e.because} failed`);
        return;
      case 'warning':
        this.#print(`psy: warning: ${e.message}`);
        return;
      case 'interrupted':
        this.#print('psy: interrupted');
        return;
      default: {
        const never: never = e;
        throw new Error(`unknown event ${String(never)}`);
      }
    }
  }

  /**
   * Stop the timer and leave the terminal on a fresh line. On a terminal the last status
   * line stays (`[5/5] squashfs`), so a finished build does not end on an empty line.
   */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#o.tty && this.#lastStep !== undefined && !this.#consoleBusy) {
      this.#o.out.write(`\r\x1b[K${this.#statusText()}\n`);
      this.#lineShown = false;
    } else {
      this.#clear();
    }
  }

  #ensureTimer(): void {
    if (!this.#o.tty || this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      if (this.#running.size === 0) return;
      this.#redraw();
    }, 1000);
    this.#timer.unref();
  }

  #statusText(): string {
    const now = Date.now();
    const running = [...this.#running.entries()].sort((a, b) => a[1] - b[1]);
    const parts = running.slice(0, 3).map(([name, t]) => {
      const s = Math.floor((now - t) / 1000);
      return s >= 2 ? `${name} (${s}s)` : name;
    });
    const more = running.length > 3 ? ` +${running.length - 3}` : '';
    // Nothing running: the last step stays named (the final line of a build).
    const what = parts.length > 0 ? `${parts.join(', ')}${more}` : (this.#lastStep ?? '');
    const text = `[${this.#done}/${this.#total}] ${what}`;
    const cols = this.#o.columns ?? 80;
    return text.length > cols - 1 ? text.slice(0, cols - 4) + '...' : text;
  }

  #redraw(): void {
    if (!this.#o.tty || this.#consoleBusy) return;
    this.#o.out.write(`\r\x1b[K${this.#statusText()}`);
    this.#lineShown = true;
  }

  #clear(): void {
    if (this.#lineShown) {
      this.#o.out.write('\r\x1b[K');
      this.#lineShown = false;
    }
  }

  #print(text: string, target?: string): void {
    this.#clear();
    this.#o.out.write(text + '\n');
    this.#lastLine = target;
    if (this.#o.tty && this.#running.size > 0) this.#redraw();
  }
}

/** `name: description`, or the name alone when the description adds nothing. */
function stepName(target: string, description: string): string {
  return description === '' || description === target ? target : `${target}: ${description}`;
}
