import {spawnSync} from 'node:child_process';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {fixtureSettings, writeConfig, writeProject} from './os-project.js';

// On the psyopsOS graph itself: `psy explain X` is `psy build -n X`, and `psy build X`
// (its no-op fast path included) runs no target the dry run did not name.

interface Verdicts {
  /** explain's chain, target → reason. */
  explain: Record<string, string>;
  /** build -n's would-run list, target → reason. */
  dry: Record<string, string>;
  /** What the build then ran. */
  ran: string[];
}

const settle = () => new Promise((r) => setTimeout(r, 2200));

describe.skipIf(!haveAlpineTestData())('explain and build -n on the psyopsOS graph', () => {
  let fx: FixtureRepository;
  let base: string;
  let dir: string;
  const psy = (args: string[]) => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'psy.js'), ...args], {cwd: dir, encoding: 'utf8', timeout: 900_000});
    if (r.status !== 0) throw new Error(`psy ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  function verdicts(target: string): Verdicts {
    const e = JSON.parse(psy(['explain', '--json', target])) as {chain: Array<{target: string; reason: string}>};
    const d = JSON.parse(psy(['build', '-n', '--json', target])) as {wouldRun: Array<{target: string; reason: string}>};
    const b = JSON.parse(psy(['build', '--json', target])) as {ran: string[]};
    return {
      explain: Object.fromEntries(e.chain.map((s) => [s.target, s.reason])),
      dry: Object.fromEntries(d.wouldRun.map((s) => [s.target, s.reason])),
      ran: b.ran,
    };
  }
  /** explain's chain is build -n's verdicts followed down; the build runs nothing else. */
  function agree(v: Verdicts): void {
    for (const [t, reason] of Object.entries(v.explain)) expect(v.dry[t], t).toBe(reason);
    expect(Object.keys(v.explain).length > 0).toBe(Object.keys(v.dry).includes('diskimg'));
    for (const t of v.ran) expect(Object.keys(v.dry), `${t} ran without a dry-run verdict`).toContain(t);
  }

  beforeAll(async () => {
    fx = await buildFixtureRepository();
    base = await mkdtemp(join(tmpdir(), 'psy-explain-real-'));
    dir = join(base, 'p');
    await writeProject(dir, fixtureSettings(dir, fx));
    psy(['build', 'diskimg']);
    await settle();
    // The no-op snapshot is written now: the next no-op is answered by the fast path.
    psy(['build', 'diskimg']);
  }, 900_000);
  afterAll(async () => {
    if (base) await rm(base, {recursive: true, force: true});
  });

  it('after a no-op: up to date, nothing would run, nothing runs', () => {
    const v = verdicts('diskimg');
    expect(v).toEqual({explain: {}, dry: {}, ran: []});
  });

  it("after a one-line init-patch edit: the chain ends at the patch, and exactly the dry run's targets run", async () => {
    const patchPath = join(dir, 'alpine/initramfs-init.patch');
    const patch = await readFile(patchPath, 'utf8');
    await writeFile(
      patchPath,
      patch.replace('+# psyopsOS: psyopsos=<LABEL> names the A/B slot to boot.', '+# psyopsOS: psyopsos=<LABEL> names the slot to boot.'),
    );
    const v = verdicts('diskimg');
    agree(v);
    expect(v.explain['init']).toBe('input alpine/initramfs-init.patch changed');
    expect(Object.keys(v.explain)).toEqual(['diskimg', 'ostar', 'initramfs', 'init']);
    expect([...v.ran].sort()).toEqual(Object.keys(v.dry).sort());
    await writeFile(patchPath, patch);
    agree(verdicts('diskimg'));
    await settle();
    psy(['build', 'diskimg']);
    expect(verdicts('diskimg')).toEqual({explain: {}, dry: {}, ran: []});
  }, 900_000);

  it('after an output is deleted: the same verdicts; the rebuilt output cuts the rebuild off', async () => {
    await rm(join(dir, 'cache/out/initramfs/initramfs'));
    const v = verdicts('diskimg');
    agree(v);
    expect(v.explain['initramfs']).toBe('output cache/out/initramfs/initramfs missing');
    // The same bytes again: nothing downstream of it ran.
    expect(v.ran).toEqual(['initramfs']);
    await settle();
    psy(['build', 'diskimg']);
    expect(verdicts('diskimg')).toEqual({explain: {}, dry: {}, ran: []});
  }, 900_000);

  it('after a settings change: the same verdicts, down to the target whose parameters changed', async () => {
    await writeConfig(dir, fixtureSettings(dir, fx, {grub: {timeoutSec: 3}}));
    const v = verdicts('diskimg');
    agree(v);
    expect(Object.values(v.explain).at(-1)).toBe('parameters changed');
    expect(v.ran.length).toBeGreaterThan(0);
    await settle();
    psy(['build', 'diskimg']);
    expect(verdicts('diskimg')).toEqual({explain: {}, dry: {}, ran: []});
  }, 900_000);
});
