import {mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, describe, expect, it} from 'vitest';
import {runTool} from '../src/tools/run.js';
import {sha256File, sha256FileSync} from '../src/fs/sha256-file.js';

describe('the one sha256-of-a-file helper', () => {
  const dir = mkdtempSync(join(tmpdir(), 'psy-sha256-'));
  afterAll(() => rmSync(dir, {recursive: true, force: true}));

  it('agrees with sha256sum for empty, small and multi-chunk files, async and sync', async () => {
    for (const size of [0, 3, (1 << 20) - 1, 1 << 20, (3 << 20) + 17]) {
      const path = join(dir, `f${size}`);
      writeFileSync(path, Buffer.from(Array.from({length: size}, (_, i) => (i * 31 + size) & 0xff)));
      const want = (await runTool('sha256sum', [path])).stdout.toString('utf8').split(' ')[0];
      expect(await sha256File(path)).toBe(want);
      expect(sha256FileSync(path)).toEqual({sha256: want, size});
    }
  });

  it('fails for a missing file', async () => {
    await expect(sha256File(join(dir, 'missing'))).rejects.toMatchObject({code: 'ENOENT'});
    expect(() => sha256FileSync(join(dir, 'missing'))).toThrow(/ENOENT/);
  });
});
