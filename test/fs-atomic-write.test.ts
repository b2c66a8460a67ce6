import {chmodSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {mkdtempSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, describe, expect, it} from 'vitest';
import {SCRATCH_PREFIX, copyFileAtomic, replaceSymlink, scratchPath, writeFileAtomic, writeFileAtomicSync} from '../src/fs/atomic-write.js';

describe('the one atomic write', () => {
  const dir = mkdtempSync(join(tmpdir(), 'psy-atomic-'));
  afterAll(() => {
    chmodSync(dir, 0o755);
    rmSync(dir, {recursive: true, force: true});
  });

  it('replaces a file whole, with the mode asked for, leaving no scratch file', async () => {
    const f = join(dir, 'a');
    writeFileSync(f, 'old');
    await writeFileAtomic(f, 'new', 0o600);
    expect(readFileSync(f, 'utf8')).toBe('new');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    writeFileAtomicSync(f, Buffer.from('sync'));
    expect(readFileSync(f, 'utf8')).toBe('sync');
    const src = join(dir, 'src');
    writeFileSync(src, 'copied');
    await copyFileAtomic(src, f);
    expect(readFileSync(f, 'utf8')).toBe('copied');
    await replaceSymlink('src', join(dir, 'link'));
    await replaceSymlink('a', join(dir, 'link'));
    expect(readlinkSync(join(dir, 'link'))).toBe('a');
    expect(readdirSync(dir).filter((n) => n.startsWith(SCRATCH_PREFIX))).toEqual([]);
  });

  it('names its scratch file beside the target, hidden', () => {
    const p = scratchPath(join(dir, 'x', 'target.json'));
    expect(p.startsWith(join(dir, 'x', SCRATCH_PREFIX))).toBe(true);
    expect(p.endsWith('-target.json')).toBe(true);
  });

  it('leaves the old file and no scratch file when the write fails', async () => {
    const sub = join(dir, 'ro');
    mkdirSync(sub);
    const f = join(sub, 'kept');
    writeFileSync(f, 'old');
    // a directory where the new content cannot be renamed to: the rename fails after the write
    const target = join(sub, 'dir');
    mkdirSync(join(target, 'full'), {recursive: true});
    await expect(writeFileAtomic(target, 'x')).rejects.toMatchObject({code: expect.stringMatching(/EISDIR|ENOTEMPTY|EEXIST/)});
    expect(() => writeFileAtomicSync(target, 'x')).toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readdirSync(sub).sort()).toEqual(['dir', 'kept']);
    expect(readFileSync(f, 'utf8')).toBe('old');
  });
});
