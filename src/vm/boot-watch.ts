import {spawn} from 'node:child_process';
import {readFile, writeFile} from 'node:fs/promises';
import {PsyError} from '../errors.js';
import {QEMU, qemuArgs, qemuMissing, type Accel, type VmOptions} from './qemu.js';

/**
 * Boot an image headless and watch its serial console: succeed on a marker, fail fast
 * on a kernel panic, a GRUB prompt, the init's rescue shell or a boot-fail marker, give
 * up after a timeout. The console log is kept in a file.
 */

export interface BootWatchOptions extends Omit<VmOptions, 'serial'> {
  readonly accel: Accel;
  readonly logFile: string;
  /** A line matching this ends the boot successfully. */
  readonly marker: RegExp;
  readonly failOn?: readonly RegExp[];
  readonly timeoutMs?: number;
}

export interface BootResult {
  readonly line: string;
  readonly match: RegExpMatchArray;
  readonly seconds: number;
  readonly log: string;
}

export const defaultFailures: readonly RegExp[] = [/Kernel panic/, /^grub> /m, /PSYOPS-BOOT-FAIL/, /initramfs emergency recovery shell/];

/** Serial output as plain lines: no CR, no ANSI escape sequences. */
export function cleanConsole(raw: string): string {
  /* eslint-disable no-control-regex -- ESC sequences are what it removes */
  return raw
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\x1b[()][0-9A-Za-z]/g, '')
    .replace(/\x1b[=>c]/g, '')
    .replace(/\r/g, '');
  /* eslint-enable no-control-regex */
}

function tail(text: string, n = 12): string {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-n)
    .join(' | ');
}

export async function bootAndWatch(opts: BootWatchOptions): Promise<BootResult> {
  await writeFile(opts.logFile, '');
  const args = qemuArgs({...opts, serial: {kind: 'file', path: opts.logFile}, noNetwork: opts.noNetwork ?? opts.mac === undefined}, opts.accel);
  const started = Date.now();
  const child = spawn(QEMU, args, {stdio: ['ignore', 'ignore', 'pipe']});
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  let exited = false;
  let spawnError: unknown;
  child.on('error', (e) => (spawnError = e));
  const exit = new Promise<void>((r) => child.on('close', () => ((exited = true), r())));
  const failures = opts.failOn ?? defaultFailures;
  const deadline = started + (opts.timeoutMs ?? 180_000);
  try {
    for (;;) {
      const log = cleanConsole(await readFile(opts.logFile, 'latin1'));
      for (const line of log.split('\n')) {
        const m = line.match(opts.marker);
        if (m) return {line, match: m, seconds: (Date.now() - started) / 1000, log};
      }
      const failed = failures.find((f) => f.test(log));
      if (failed) {
        // Let a panic or rescue message finish printing before it is quoted.
        await new Promise((r) => setTimeout(r, 500));
        const full = cleanConsole(await readFile(opts.logFile, 'latin1'));
        throw new PsyError('boot-failed', `boot of ${opts.image} failed (${failed.source}); console: ${tail(full)}`);
      }
      if (spawnError) throw qemuMissing(spawnError) ?? new PsyError('vm-failed', `${QEMU}: ${String(spawnError)}`);
      if (exited) {
        throw new PsyError('boot-failed', `${QEMU} exited before the marker ${opts.marker.source}; ${tail(stderr, 3) || 'console: ' + tail(log)}`);
      }
      if (Date.now() > deadline) {
        throw new PsyError(
          'boot-timeout',
          `no ${opts.marker.source} on the console of ${opts.image} within ${((opts.timeoutMs ?? 180_000) / 1000).toFixed(0)} s; console: ${tail(log)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    if (!exited) {
      child.kill('SIGKILL');
      await exit;
    }
  }
}
