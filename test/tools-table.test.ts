import {mkdtempSync, rmSync, writeFileSync, chmodSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, describe, expect, it} from 'vitest';
import {tools} from '../rules/tools.js';
import {debianPackageOf, knownTools, tool} from '../src/tools/table.js';
import {missingToolError, runTool, runToolExit} from '../src/tools/run.js';

describe('the one table of external tools', () => {
  it('gives the rules their specs from the table, grub-mkimage included', () => {
    for (const spec of Object.values(tools)) expect(spec).toEqual(tool(spec.command));
    expect(tools.grubMkimage.debianPackage).toBe('grub-efi-amd64-bin');
    expect(debianPackageOf('grub-mkimage')).toBe('grub-efi-amd64-bin');
  });

  it('names an installed Debian package that really holds each program on this machine', async () => {
    const {stdout} = await runTool('dpkg-query', ['-W', '-f', '${Package}\\n']);
    const installed = new Set(stdout.toString('utf8').split('\n'));
    for (const t of knownTools()) {
      // the program's own package, or one that depends on it (grub-efi-amd64-bin → grub-common)
      const which = await runToolExit('sh', ['-c', `command -v ${t.command}`]);
      if (which.code !== 0) continue;
      expect(installed.has(t.debianPackage), `${t.command}: ${t.debianPackage}`).toBe(true);
    }
  });

  it('refuses a command missing from the table instead of guessing', () => {
    expect(() => tool('no-such-tool')).toThrow(/not in the tool table/);
    expect(debianPackageOf('no-such-tool')).toBeUndefined();
  });
});

describe('runTool (execa)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'psy-tools-'));
  afterAll(() => rmSync(dir, {recursive: true, force: true}));

  it('names the Debian package of a missing tool in one line', async () => {
    const err = (await runTool('mksquashfs', ['-version'], {env: {PATH: dir}}).catch((e: unknown) => e)) as Error & {code?: string};
    expect(err.code).toBe('missing-tool');
    expect(err.message).toBe('mksquashfs not found on PATH: install the Debian package squashfs-tools (apt-get install squashfs-tools)');
    expect(missingToolError('unknown-prog').message).toBe('unknown-prog not found on PATH: install it');
  });

  it('fails a non-zero exit with the tail of its stderr, and hands exits to runToolExit callers', async () => {
    const script = join(dir, 'fails');
    writeFileSync(script, '#!/bin/sh\necho one >&2\necho two >&2\nexit 3\n');
    chmodSync(script, 0o755);
    await expect(runTool(script, [])).rejects.toThrow(/fails failed \(exit 3\): one \| two$/);
    const r = await runToolExit(script, []);
    expect(r.code).toBe(3);
    expect(r.stderr.toString()).toBe('one\ntwo\n');
  });

  it('passes input, environment and working folder, returns Buffers, and streams stdout on request', async () => {
    const r = await runTool('sh', ['-c', 'cat; printf "%s" "$X"; pwd'], {input: 'in:', env: {X: 'x:'}, cwd: dir});
    expect(Buffer.isBuffer(r.stdout)).toBe(true);
    expect(r.stdout.toString()).toBe(`in:x:${dir}\n`);
    let streamed = 0;
    const s = await runToolExit('head', ['-c', '3000000', '/dev/zero'], {onStdout: (b) => (streamed += b.length)});
    expect(streamed).toBe(3_000_000);
    expect(s.stdout.length).toBe(0);
  });

  it('kills the program when its signal aborts', async () => {
    const ac = new AbortController();
    const p = runTool('sleep', ['30'], {signal: ac.signal});
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toThrow(/sleep/);
  });
});
