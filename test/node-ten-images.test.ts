/**
 * Ten nodes on one generic image: `psy node new` ten times (timed), `psy build diskimg`,
 * then `psy build diskimg@n1 ... diskimg@n10`: only the twenty node steps run (each
 * node's sectar and its copy of the generic image with the secrets written in), nothing
 * of the OS is built again, and a second identical build runs nothing.
 */
import {rmSync} from 'node:fs';
import {afterAll, describe, expect, it} from 'vitest';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {nodeProject, type NodeProjectDir} from './helpers/node-project.js';
import {haveAlpineTestData} from './helpers/shared-data.js';
import {buildFixtureRepository} from './fixtures/build-fixture-repository.js';
import {fixtureSettings, writeProject} from './os-project.js';

const NODES = Array.from({length: 10}, (_, i) => `n${i + 1}`);

let p: NodeProjectDir | undefined;
afterAll(() => {
  if (p) rmSync(p.dir, {recursive: true, force: true});
});

async function build(targets: string[]): Promise<{ran: string[]; seconds: number}> {
  const t0 = Date.now();
  const r = await psy(['build', '--json', ...targets], p!.dir, p!.env);
  expect(r.code, r.stderr).toBe(0);
  return {ran: [...(JSON.parse(r.stdout) as {ran: string[]}).ran].sort(), seconds: (Date.now() - t0) / 1000};
}

describe.skipIf(!haveAlpineTestData())('ten node images after the generic one', () => {
  it("builds only each node's sectar and image, and nothing the second time", async () => {
    assertBuilt();
    const fx = await buildFixtureRepository();
    p = nodeProject('psy-ten-nodes-');
    await writeProject(p.dir, fixtureSettings(p.dir, fx), {nodeRecipients: [p.operator.recipient]});
    const times: number[] = [];
    for (const [i, n] of NODES.entries()) {
      const t0 = Date.now();
      const r = await psy(['node', 'new', n, '--mac', `52:54:00:10:00:${String(i + 1).padStart(2, '0')}`, '--psynet-ip', `10.10.10.${i + 1}/24`], p.dir, p.env);
      times.push((Date.now() - t0) / 1000);
      expect(r.code, r.stderr).toBe(0);
    }
    const generic = await build(['diskimg']);
    expect(generic.ran).toContain('diskimg');
    const nodes = await build(NODES.map((n) => `diskimg@${n}`));
    expect(nodes.ran).toEqual(NODES.flatMap((n) => [`diskimg@${n}`, `sectar@${n}`]).sort());
    const again = await build(NODES.map((n) => `diskimg@${n}`));
    expect(again.ran).toEqual([]);
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    console.log(
      `psy node new: mean ${mean.toFixed(2)} s, min ${Math.min(...times).toFixed(2)} s, max ${Math.max(...times).toFixed(2)} s (${times.length} runs); ` +
        `psy build diskimg: ${generic.ran.length} steps, ${generic.seconds.toFixed(1)} s; ` +
        `10 node images after it: ${nodes.ran.length} steps, ${nodes.seconds.toFixed(1)} s; again: ${again.ran.length} steps, ${again.seconds.toFixed(1)} s`,
    );
  }, 1_800_000);
});
