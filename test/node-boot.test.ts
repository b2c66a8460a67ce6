/**
 * A node made by `psy node new` boots from its own image as that node: `psy build
 * diskimg@NAME`, then `psy vm diskimg@NAME` (one QEMU boot, the NIC given the node's MAC
 * by psy vm), and the image's own postboot script prints the node's PSYOPSOS-NODE line:
 * its name, psy0 with its MAC, and the fingerprint `psy node show` gives for its key.
 * The only stand-in is the fixture project's inittab, which runs the local.d scripts as
 * OpenRC's local service would (the fixture world has no openrc).
 */
import {rmSync} from 'node:fs';
import {afterAll, describe, expect, it} from 'vitest';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {nodeProject, type NodeProjectDir} from './helpers/node-project.js';
import {haveAlpineTestData} from './helpers/shared-data.js';
import {buildFixtureRepository} from './fixtures/build-fixture-repository.js';
import {fixtureSettings, writeProject} from './os-project.js';

const NODE = 'bootnode';
const MAC = '52:54:00:77:00:01';
const nodeLine = /PSYOPSOS-NODE name=(\S+) psy0=(\S+) sshkey=(\S+) data=(\S+)/;

let p: NodeProjectDir | undefined;
afterAll(() => {
  if (p) rmSync(p.dir, {recursive: true, force: true});
});

describe.skipIf(!haveAlpineTestData())('node image boot', () => {
  it('diskimg@NAME boots as its node: the postboot script prints its name, its MAC on psy0 and its SSH key', async () => {
    assertBuilt();
    const fx = await buildFixtureRepository();
    p = nodeProject('psy-node-boot-');
    await writeProject(p.dir, fixtureSettings(p.dir, fx), {nodeRecipients: [p.operator.recipient]});
    const n = await psy(['node', 'new', NODE, '--mac', MAC], p.dir, p.env);
    expect(n.code, n.stderr).toBe(0);
    const show = await psy(['node', 'show', NODE, '--json'], p.dir, p.env);
    expect(show.code, show.stderr).toBe(0);
    const fingerprint = (JSON.parse(show.stdout) as {ssh: {fingerprint: string}}).ssh.fingerprint;
    expect(fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);

    const b = await psy(['build', 'diskimg@bootnode'], p.dir, p.env);
    expect(b.code, b.stderr).toBe(0);
    // psy vm builds the target again (a no-op now) and takes the NIC's MAC from nodes/
    const t0 = Date.now();
    const vm = await psy(['vm', `diskimg@${NODE}`, '--accel', 'tcg', '--marker', nodeLine.source, '--timeout', '480', '--log', 'serial.log'], p.dir, p.env);
    expect(vm.code, vm.stderr).toBe(0);
    console.log(`node boot (psy vm, tcg): ${((Date.now() - t0) / 1000).toFixed(1)} s: ${vm.stdout.trim()}`);
    expect(vm.stdout.match(nodeLine)?.slice(1)).toEqual([NODE, MAC, fingerprint, 'no']);
  }, 1_200_000);
});
