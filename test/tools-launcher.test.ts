import {mkdtempSync, readdirSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, describe, expect, it} from 'vitest';
import {runTool, runToolExit, withLauncher} from '../src/tools/run.js';

// Programs started through the launcher (a small shell made before a process grows)
// behave as programs started directly: same output, status, errors.
const dir = mkdtempSync(join(tmpdir(), 'psy-launcher-test-'));
afterAll(() => rmSync(dir, {recursive: true, force: true}));

const both = async (command: string, args: string[], options: Parameters<typeof runToolExit>[2] = {}) => ({
  direct: await runToolExit(command, args, options),
  launched: await withLauncher(() => runToolExit(command, args, options)),
});

describe('tools launcher', () => {
  it('gives the same stdout, stderr and exit status as a direct start', async () => {
    const {direct, launched} = await both('sh', ['-c', 'printf "out\\0\\377"; printf err >&2; exit 3']);
    expect(launched.code).toBe(3);
    expect(launched).toEqual(direct);
    expect([...launched.stdout]).toEqual([...Buffer.from('out\0\xff', 'latin1')]);
    expect(launched.stderr.toString()).toBe('err');
  });

  it('starts programs from its shell, not from this process', async () => {
    const parent = async () => Number((await runToolExit('sh', ['-c', 'echo $PPID'])).stdout.toString());
    expect(await parent()).toBe(process.pid);
    expect(await withLauncher(parent)).not.toBe(process.pid);
    // once the work is done, programs are started directly again
    expect(await parent()).toBe(process.pid);
  });

  it('passes arguments with quotes, spaces and shell characters untouched', async () => {
    const args = ["it's", 'a "b"', '$HOME', '`id`', '; rm -rf x', '*', ''];
    const {direct, launched} = await both('printf', ['%s|', ...args]);
    expect(launched.stdout.toString()).toBe(args.map((a) => `${a}|`).join(''));
    expect(launched).toEqual(direct);
  });

  it('passes an argument holding a newline (through a direct start)', async () => {
    const r = await withLauncher(() => runToolExit('printf', ['%s', 'a\nb']));
    expect(r.stdout.toString()).toBe('a\nb');
  });

  it('honours cwd, env and input', async () => {
    const r = await withLauncher(() =>
      runToolExit('sh', ['-c', 'pwd; printf "%s\\n" "$PSY_TEST_VAR"; cat'], {cwd: dir, env: {PSY_TEST_VAR: "x 'y'"}, input: 'from stdin'}),
    );
    expect(r.stdout.toString()).toBe(`${dir}\nx 'y'\nfrom stdin`);
    // without input the program reads an empty stdin
    const empty = await withLauncher(() => runToolExit('cat', []));
    expect(empty.stdout.length).toBe(0);
  });

  it('names a missing program and its package, as a direct start does', async () => {
    await expect(withLauncher(() => runTool('psy-no-such-program', []))).rejects.toThrow(/^psy-no-such-program not found on PATH/);
    await expect(withLauncher(() => runTool('sh', ['-c', 'echo boom >&2; exit 2']))).rejects.toThrow('sh failed (exit 2): boom');
  });

  it('reports a program killed by a signal', async () => {
    const r = await withLauncher(() => runToolExit('sh', ['-c', 'kill -TERM $$']));
    expect(r.code).toBe(-1);
    expect(r.signal).toBe('SIGTERM');
  });

  it('runs requests made at once in order, and leaves no files behind', async () => {
    const before = readdirSync(tmpdir()).filter((n) => n.startsWith('psy-launch-')).length;
    const outs = await withLauncher(() => Promise.all(Array.from({length: 8}, (_, i) => runToolExit('printf', [String(i)]))));
    expect(outs.map((o) => o.stdout.toString())).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith('psy-launch-')).length).toBe(before);
  });
});
