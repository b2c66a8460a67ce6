import {spawnSync} from 'node:child_process';
import {mkdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {join, relative} from 'node:path';
import {afterEach, beforeAll, describe, expect, it} from 'vitest';
import {findPartition, listExt4, readExt4File} from '../src/disk/index.js';
import type {TargetConfig} from '../src/engine/config.js';
import {psyopsosConfig} from '../targets/psyopsos.js';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {ageKeygen, nodeProject, type NodeProjectDir} from './helpers/node-project.js';
import {haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {buildFixtureRepository} from './fixtures/build-fixture-repository.js';
import {fixtureSettings, writeProject} from './os-project.js';

let p: NodeProjectDir;
beforeAll(() => assertBuilt());
afterEach(() => rmSync(p.dir, {recursive: true, force: true}));

/**
 * A psyopsOS project whose generic `diskimg` is a small empty psyops layout (the real
 * one needs the whole OS built): the node targets are the real ones psyopsosConfig
 * makes, reading nodes/.
 */
function smallImageProject(recipients: string[]): string {
  const targets = relative(p?.dir ?? '', join(repoRoot, 'targets/psyopsos.js'));
  const disk = relative(p?.dir ?? '', join(repoRoot, 'src/disk/index.js'));
  return `import {psyopsosConfig} from '${targets}';
import {buildDiskImage, psyopsPartitions} from '${disk}';
const base = psyopsosConfig({imageSeed: 'test-seed', ownPackages: []}, {settings: {nodes: {recipients: ${JSON.stringify(recipients)}}}}, {root: import.meta.dirname});
const generic = {
  name: 'diskimg',
  rule: {name: 'small-image', version: 1, module: import.meta.url, async run(ctx) {
    await buildDiskImage(ctx.outputs.image, {seed: 'test-seed', epoch: ctx.sourceDateEpoch, partitions: psyopsPartitions({espMiB: 34, secretMiB: 8, slotMiB: 12})}, ctx.run);
  }},
  outputs: {image: 'x86_64/psyopsOS.x86_64-uefi.generic.img'},
};
export default {...base, targets: [generic, ...base.targets.filter((t) => t.name.includes('@'))], default: 'diskimg'};
`;
}

async function build(
  args: string[],
  env = p.env,
): Promise<{code: number | null; ran: string[]; stderr: string; failed: Array<{target: string; message: string}>}> {
  const r = await psy(['build', '--json', ...args], p.dir, env);
  const j = JSON.parse(r.stdout || '{}') as {ran?: string[]; failed?: Array<{target: string; message: string}>};
  return {code: r.code, ran: [...(j.ran ?? [])].sort(), stderr: r.stderr, failed: j.failed ?? []};
}

function tarNames(path: string): string[] {
  return spawnSync('tar', ['-tf', path], {encoding: 'utf8'}).stdout.trim().split('\n');
}

describe('per-node targets', () => {
  it('psyopsosConfig adds sectar@NAME and diskimg@NAME for each node; the generic image stays node-agnostic', () => {
    p = nodeProject('psy-node-targets-');
    for (const n of ['b-node', 'a-node']) {
      mkdirSync(join(p.dir, 'nodes', n), {recursive: true});
      writeFileSync(join(p.dir, 'nodes', n, 'node.json'), '{}');
    }
    mkdirSync(join(p.dir, 'nodes', 'not-a-node'));
    const cfg = {targets: psyopsosConfig({ownPackages: []}, {}, {root: p.dir}).targets as TargetConfig[]};
    const names = cfg.targets.map((t) => t.name);
    expect(names.filter((n) => n.includes('@'))).toEqual(['sectar@a-node', 'diskimg@a-node', 'sectar@b-node', 'diskimg@b-node']);
    const generic = cfg.targets.find((t) => t.name === 'diskimg')!;
    expect(Object.keys(generic.inputs ?? {})).toEqual(['ostar', 'esptar']);
    const sectar = cfg.targets.find((t) => t.name === 'sectar@a-node')!;
    expect(sectar.inputs).toEqual({sealed: 'nodes/a-node/secrets.age'});
    expect(cfg.targets.find((t) => t.name === 'diskimg@a-node')!.inputs).toEqual({image: {target: 'diskimg'}, sectar: {target: 'sectar@a-node'}});
    // without the project root (a config that does not say where it is) there are none
    expect((psyopsosConfig({ownPackages: []}).targets as TargetConfig[]).some((t) => t.name.includes('@'))).toBe(false);
  });

  it('builds each node image from the generic one; editing one node rebuilds only its two targets', async () => {
    p = nodeProject('psy-node-targets-');
    writeFileSync(join(p.dir, 'build.config.ts'), smallImageProject([p.operator.recipient]));
    for (const [i, n] of ['alpha', 'beta'].entries()) {
      const r = await psy(['node', 'new', n, '--mac', `52:54:00:00:00:0${i + 1}`], p.dir, p.env);
      expect(r.code, r.stderr).toBe(0);
    }
    const targets = await psy(['targets'], p.dir, {});
    expect(targets.stdout).toMatch(/sectar@alpha +secrets of node alpha \(decrypted from nodes\/alpha\/secrets\.age\)/);

    const first = await build(['diskimg', 'diskimg@alpha', 'diskimg@beta']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.ran).toEqual(['diskimg', 'diskimg@alpha', 'diskimg@beta', 'sectar@alpha', 'sectar@beta']);
    const out = join(p.dir, 'cache/out');
    const sectar = join(out, 'noarch/psyops-secret.alpha.tar');
    expect(statSync(sectar).mode & 0o777).toBe(0o600);
    expect(tarNames(sectar)).toEqual(['age.key', 'mactab', 'network.interfaces', 'nodename', 'ssh_host_ed25519_key']);
    const img = join(out, 'x86_64/psyopsOS.x86_64-uefi.alpha.img');
    const generic = join(out, 'x86_64/psyopsOS.x86_64-uefi.generic.img');
    expect(statSync(img).mode & 0o777).toBe(0o600);
    expect(statSync(img).blocks * 512).toBeLessThan(statSync(img).size);
    // psyops-secret holds the node's files; every other byte is the generic image's
    const part = await findPartition(img, 'psyops-secret');
    expect((await readExt4File(img, part, '/mactab')).toString()).toBe('psy0 52:54:00:00:00:01\n');
    expect((await readExt4File(img, part, '/nodename')).toString()).toBe('alpha\n');
    const a = readFileSync(img);
    const g = readFileSync(generic);
    expect(a.length).toBe(g.length);
    expect(a.subarray(0, part.offset).equals(g.subarray(0, part.offset))).toBe(true);
    expect(a.subarray(part.offset + part.size).equals(g.subarray(part.offset + part.size))).toBe(true);
    expect(a.subarray(part.offset, part.offset + part.size).equals(g.subarray(part.offset, part.offset + part.size))).toBe(false);

    expect((await build(['diskimg@alpha', 'diskimg@beta'])).ran).toEqual([]);
    // same encrypted file, same bytes (the identity is not part of the key)
    rmSync(img);
    rmSync(sectar);
    expect((await build(['diskimg@alpha'])).ran).toEqual(['diskimg@alpha', 'sectar@alpha']);
    expect(readFileSync(img).equals(a)).toBe(true);

    const rot = await psy(['node', 'rotate', 'beta', '--ssh'], p.dir, p.env);
    expect(rot.code, rot.stderr).toBe(0);
    expect((await build(['diskimg@alpha', 'diskimg@beta'])).ran).toEqual(['diskimg@beta', 'sectar@beta']);

    // adding a node adds its targets (the config notes the nodes folder)
    expect((await psy(['node', 'new', 'gamma', '--mac', '52:54:00:00:00:03'], p.dir, p.env)).code).toBe(0);
    expect((await build(['diskimg@gamma'])).ran).toEqual(['diskimg@gamma', 'sectar@gamma']);
    expect((await psy(['node', 'rm', 'gamma'], p.dir, {})).code).toBe(0);
    const gone = await psy(['build', 'sectar@gamma'], p.dir, p.env);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toMatch(/sectar@gamma/);
  });

  it('fails the sectar step with one line for a wrong identity or a damaged file, and writes no output', async () => {
    p = nodeProject('psy-node-targets-');
    writeFileSync(join(p.dir, 'build.config.ts'), smallImageProject([p.operator.recipient]));
    expect((await psy(['node', 'new', 'alpha', '--mac', '52:54:00:00:00:01'], p.dir, p.env)).code).toBe(0);
    const other = ageKeygen(p.dir, 'other.key');
    const wrong = await build(['sectar@alpha'], {PSY_AGE_IDENTITY: other.file});
    expect(wrong.code).toBe(1);
    expect(wrong.failed).toEqual([
      {
        target: 'sectar@alpha',
        message: expect.stringMatching(
          /^nodes\/alpha\/secrets\.age: cannot be decrypted with the age identity from PSY_AGE_IDENTITY \(.*other\.key\) \(it is not one of the file's recipients\)$/,
        ),
      },
    ]);
    const none = await build(['sectar@alpha'], {HOME: join(p.dir, 'nohome')});
    expect(none.failed[0]?.message).toMatch(/^no age identity to decrypt node secrets: .*nohome\/\.config\/psy\/age\.key cannot be read/);
    writeFileSync(join(p.dir, 'nodes/alpha/secrets.age'), '-----BEGIN AGE ENCRYPTED FILE-----\nnope\n-----END AGE ENCRYPTED FILE-----\n');
    const corrupt = await build(['sectar@alpha']);
    expect(corrupt.failed[0]?.message).toMatch(/^nodes\/alpha\/secrets\.age: (not an age-encrypted file|damaged age file)/);
    expect(() => statSync(join(p.dir, 'cache/out/noarch/psyops-secret.alpha.tar'))).toThrow();
  });
});

describe.skipIf(!haveAlpineTestData())('node images of the offline fixture OS', () => {
  it('ten nodes after the generic image: each costs its sectar and its image step, nothing else runs', async () => {
    const fx = await buildFixtureRepository();
    p = nodeProject('psy-node-fixture-');
    const settings = fixtureSettings(p.dir, fx);
    await writeProject(p.dir, settings);
    const targets = relative(p.dir, join(repoRoot, 'targets/psyopsos.js'));
    writeFileSync(
      join(p.dir, 'build.config.ts'),
      `import {psyopsosConfig} from '${targets}';\nexport default psyopsosConfig(${JSON.stringify(settings)}, {settings: {nodes: {recipients: ${JSON.stringify([p.operator.recipient])}}}}, {root: import.meta.dirname});\n`,
    );
    const generic = await build(['diskimg']);
    expect(generic.code, generic.stderr).toBe(0);
    expect(generic.ran).toContain('diskimg');

    const names = Array.from({length: 10}, (_, i) => `node${String(i + 1).padStart(2, '0')}`);
    const newTimes: number[] = [];
    for (const [i, n] of names.entries()) {
      const t0 = performance.now();
      const r = await psy(['node', 'new', n, '--mac', `52:54:00:10:00:${String(i + 1).padStart(2, '0')}`], p.dir, p.env);
      newTimes.push((performance.now() - t0) / 1000);
      expect(r.code, r.stderr).toBe(0);
    }
    const t0 = performance.now();
    const nodes = await build(names.map((n) => `diskimg@${n}`));
    const seconds = (performance.now() - t0) / 1000;
    expect(nodes.code, nodes.stderr).toBe(0);
    expect(nodes.ran).toEqual(names.flatMap((n) => [`diskimg@${n}`, `sectar@${n}`]).sort());
    console.log(
      `psy node new: ${newTimes.map((t) => t.toFixed(2)).join(' ')} s; 10 node images after the generic one: ${nodes.ran.length} steps in ${seconds.toFixed(1)} s`,
    );

    const out = join(p.dir, 'cache/out/x86_64');
    const genericImg = join(out, 'psyopsOS.x86_64-uefi.generic.img');
    const gSecret = await findPartition(genericImg, 'psyops-secret');
    expect((await listExt4(genericImg, gSecret, '/')).map((e) => e.path)).toEqual(['lost+found']);
    const img = join(out, 'psyopsOS.x86_64-uefi.node07.img');
    const part = await findPartition(img, 'psyops-secret');
    expect((await readExt4File(img, part, '/nodename')).toString()).toBe('node07\n');
    expect((await readExt4File(img, part, '/mactab')).toString()).toBe('psy0 52:54:00:10:00:07\n');
    const slot = await findPartition(img, 'psyopsOS-A');
    expect((await readExt4File(img, slot, '/kernel.version')).equals(await readExt4File(genericImg, slot, '/kernel.version'))).toBe(true);
    expect((await build(names.map((n) => `diskimg@${n}`))).ran).toEqual([]);
  }, 900_000);
});
