import {PassThrough} from 'node:stream';
import {afterEach, describe, expect, it, vi} from 'vitest';
import {StatusPrinter} from '../src/cli/status.js';

function capture() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (b: Buffer) => (text += b.toString()));
  return {out, text: () => text};
}

afterEach(() => {
  vi.useRealTimers();
});

describe('status line', () => {
  it('on a terminal rewrites one line and refreshes the elapsed time of long steps', () => {
    vi.useFakeTimers();
    const c = capture();
    const s = new StatusPrinter({out: c.out, tty: true, verbose: false, columns: 100});
    s.event({type: 'plan', total: 3});
    s.event({type: 'fresh', target: 'a'});
    s.event({type: 'start', target: 'squashfs', description: 'squashfs', reason: 'never built', console: false});
    expect(c.text()).toBe('\r\x1b[K[1/3] squashfs');
    vi.advanceTimersByTime(5000);
    expect(c.text().endsWith('\r\x1b[K[1/3] squashfs (5s)')).toBe(true);
    s.event({type: 'finish', target: 'squashfs', durationMs: 5000, output: 'mksquashfs said hello\n', console: false});
    // The status line is cleared, the step's output printed whole under its target's name.
    expect(c.text().endsWith('\r\x1b[Koutput of squashfs:\nmksquashfs said hello\n')).toBe(true);
    s.close();
    // The last status line stays on the terminal.
    expect(c.text().endsWith('\r\x1b[K[2/3] squashfs\n')).toBe(true);
  });

  it('without a terminal prints one plain line per step, no control characters', () => {
    const c = capture();
    const s = new StatusPrinter({out: c.out, tty: false, verbose: false});
    s.event({type: 'plan', total: 2});
    s.event({type: 'start', target: 'a', description: 'build a', reason: 'never built', console: false});
    s.event({type: 'finish', target: 'a', durationMs: 1, output: '', console: false});
    s.event({type: 'start', target: 'b', description: 'b', reason: 'input x changed', console: false});
    s.event({type: 'fail', target: 'b', action: 'false', message: 'command exited with status 1', output: 'oops\n', console: false});
    s.close();
    expect(c.text()).toBe('[1/2] a: build a\n[2/2] b\nFAILED: b: command exited with status 1\n  false\noops\n');
  });

  it('verbose mode gives the reason each step runs', () => {
    const c = capture();
    const s = new StatusPrinter({out: c.out, tty: false, verbose: true});
    s.event({type: 'plan', total: 1});
    s.event({type: 'start', target: 'k', description: 'kernel', reason: 'tool mksquashfs 4.5 → 4.6', console: false});
    expect(c.text()).toBe('[1/1] k: kernel (tool mksquashfs 4.5 → 4.6)\n');
  });
});
