import {spawnSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeAll, describe, expect, it} from 'vitest';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {ageKeygen, nodeProject, snapshotTree, type NodeProjectDir} from './helpers/node-project.js';

let p: NodeProjectDir;
beforeAll(() => assertBuilt());
afterEach(() => rmSync(p.dir, {recursive: true, force: true}));

/** The node's secret files, decrypted by the real age CLI and listed by the real tar. */
function decryptWithAgeCli(dir: string, identity: string, node: string): Map<string, string> {
  const plain = spawnSync('age', ['-d', '-i', identity, join(dir, 'nodes', node, 'secrets.age')]);
  expect(plain.status, plain.stderr.toString()).toBe(0);
  const out = mkdtempSync(join(tmpdir(), 'psy-node-x-'));
  try {
    const t = spawnSync('tar', ['-x', '-C', out], {input: plain.stdout});
    expect(t.status, t.stderr.toString()).toBe(0);
    const names = spawnSync('tar', ['-t'], {input: plain.stdout, encoding: 'utf8'}).stdout.trim().split('\n');
    return new Map(names.map((n) => [n, readFileSync(join(out, n), 'utf8')]));
  } finally {
    rmSync(out, {recursive: true, force: true});
  }
}

function expectOneLine(r: {code: number | null; stderr: string}, pattern: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr.split('\n').filter((l) => l !== '')).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
}

describe('psy node', () => {
  it('makes a node whose secrets the age CLI decrypts and whose SSH key ssh-keygen accepts', async () => {
    p = nodeProject('psy-node-cli-');
    const t0 = Date.now();
    const r = await psy(['node', 'new', 'alpha', '--mac', '52:54:00:AB:cd:01', '--flavor-text', 'the first'], p.dir, p.env);
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(r.stdout).toMatch(/^node alpha: nodes\/alpha\/ \(targets sectar@alpha, diskimg@alpha\)$/m);
    const rec = JSON.parse(readFileSync(join(p.dir, 'nodes/alpha/node.json'), 'utf8')) as {mac: string; public: {ssh: string; age: string}};
    expect(rec.mac).toBe('52:54:00:ab:cd:01');
    expect(readFileSync(join(p.dir, 'nodes/alpha/secrets.age'), 'utf8')).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----\n/);

    const files = decryptWithAgeCli(p.dir, p.operator.file, 'alpha');
    expect([...files.keys()].sort()).toEqual(['age.key', 'mactab', 'network.interfaces', 'nodename', 'ssh_host_ed25519_key']);
    expect(files.get('nodename')).toBe('alpha\n');
    expect(files.get('mactab')).toBe('psy0 52:54:00:ab:cd:01\n');
    expect(files.get('network.interfaces')).toMatch(/^auto psy0\niface psy0 inet dhcp$/m);
    // the node's own age identity belongs to the recipient node.json publishes
    const ageKey = join(p.dir, 'node-age.key');
    writeFileSync(ageKey, files.get('age.key')!);
    expect(spawnSync('age-keygen', ['-y', ageKey], {encoding: 'utf8'}).stdout.trim()).toBe(rec.public.age);
    // ssh-keygen reads the private key, and its public half is the published one
    const sshKey = join(p.dir, 'ssh_host');
    writeFileSync(sshKey, files.get('ssh_host_ed25519_key')!, {mode: 0o600});
    const y = spawnSync('ssh-keygen', ['-y', '-f', sshKey], {encoding: 'utf8'});
    expect(y.status, y.stderr).toBe(0);
    expect(y.stdout.trim().split(' ').slice(0, 2)).toEqual(rec.public.ssh.split(' ').slice(0, 2));
    const l = spawnSync('ssh-keygen', ['-l', '-f', sshKey], {encoding: 'utf8'});
    expect(l.status, l.stderr).toBe(0);
    const fingerprint = l.stdout.split(' ')[1]!;
    expect(l.stdout).toMatch(/^256 SHA256:\S+ root@alpha \(ED25519\)$/m);

    const list = await psy(['node', 'list'], p.dir, p.env);
    expect(list.stdout).toBe(`alpha  52:54:00:ab:cd:01  -                   ${fingerprint}  the first\n`);
    const show = await psy(['node', 'show', 'alpha', '--json'], p.dir, {});
    expect(show.code, show.stderr).toBe(0);
    const j = JSON.parse(show.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({
      name: 'alpha',
      mac: '52:54:00:ab:cd:01',
      psynet: null,
      flavorText: 'the first',
      ssh: {fingerprint},
      age: {recipient: rec.public.age},
      psynetCert: null,
    });
    const text = await psy(['node', 'show', 'alpha'], p.dir, {});
    expect(text.stdout).toContain(`  ssh          ${fingerprint} (ED25519)\n`);
    const checked = await psy(['node', 'show', 'alpha', '--check'], p.dir, p.env);
    expect(checked.code, checked.stderr).toBe(0);
    const lj = await psy(['node', 'list', '--json'], p.dir, {});
    expect((JSON.parse(lj.stdout) as Array<{name: string}>).map((n) => n.name)).toEqual(['alpha']);

    const rm = await psy(['node', 'rm', 'alpha'], p.dir, {});
    expect(rm.stdout).toBe('removed node alpha (nodes/alpha/)\n');
    expect((await psy(['node', 'list'], p.dir, {})).stdout).toMatch(/^no nodes/);
  });

  it('takes network.interfaces from a file', async () => {
    p = nodeProject('psy-node-cli-');
    writeFileSync(join(p.dir, 'if.txt'), 'auto psy0\niface psy0 inet static\n  address 192.168.1.9/24\n');
    const r = await psy(['node', 'new', 'beta', '--mac', '52:54:00:00:00:02', '--interfaces', 'if.txt'], p.dir, p.env);
    expect(r.code, r.stderr).toBe(0);
    expect(decryptWithAgeCli(p.dir, p.operator.file, 'beta').get('network.interfaces')).toContain('address 192.168.1.9/24');
  });

  it('rotates only the parts named, and rekeys to a new operator', async () => {
    p = nodeProject('psy-node-cli-');
    await psy(['node', 'new', 'alpha', '--mac', '52:54:00:00:00:01'], p.dir, p.env);
    const before = JSON.parse(readFileSync(join(p.dir, 'nodes/alpha/node.json'), 'utf8')) as {public: {ssh: string; age: string}};
    const r = await psy(['node', 'rotate', 'alpha', '--ssh'], p.dir, p.env);
    expect(r.code, r.stderr).toBe(0);
    const after = JSON.parse(readFileSync(join(p.dir, 'nodes/alpha/node.json'), 'utf8')) as {public: {ssh: string; age: string}};
    expect(after.public.ssh).not.toBe(before.public.ssh);
    expect(after.public.age).toBe(before.public.age);
    const files = decryptWithAgeCli(p.dir, p.operator.file, 'alpha');
    writeFileSync(join(p.dir, 'k'), files.get('ssh_host_ed25519_key')!, {mode: 0o600});
    expect(spawnSync('ssh-keygen', ['-y', '-f', join(p.dir, 'k')], {encoding: 'utf8'}).stdout.split(' ')[1]).toBe(after.public.ssh.split(' ')[1]);
    const a = await psy(['node', 'rotate', 'alpha', '--age'], p.dir, p.env);
    expect(a.code, a.stderr).toBe(0);
    expect((JSON.parse(readFileSync(join(p.dir, 'nodes/alpha/node.json'), 'utf8')) as typeof after).public.age).not.toBe(before.public.age);

    // a second operator joins: after rekey, both decrypt
    const second = ageKeygen(p.dir, 'second.key');
    writeFileSync(
      join(p.dir, 'build.config.ts'),
      `export default {targets: [], settings: {nodes: {recipients: ${JSON.stringify([p.operator.recipient, second.recipient])}}}};\n`,
    );
    const k = await psy(['node', 'rekey'], p.dir, p.env);
    expect(k.stdout).toBe('re-encrypted 1 node to 2 recipients\n');
    expect(decryptWithAgeCli(p.dir, second.file, 'alpha').get('nodename')).toBe('alpha\n');
    // the key itself in PSY_AGE_IDENTITY works as well as a file
    const viaKey = await psy(['node', 'show', 'alpha', '--check'], p.dir, {PSY_AGE_IDENTITY: second.key});
    expect(viaKey.code, viaKey.stderr).toBe(0);
  });

  it('refuses mistakes with one line and writes nothing', async () => {
    p = nodeProject('psy-node-cli-');
    expect((await psy(['node', 'new', 'alpha', '--mac', '52:54:00:00:00:01', '--psynet-ip', '10.10.10.5/22'], p.dir, p.env)).code).toBe(0);
    const tree = snapshotTree(p.dir);
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['node', 'show', 'nope'], {}, /^psy node: unknown node 'nope' \(no nodes\/nope\/node\.json; nodes: alpha\)\n$/],
      [['node', 'rm', 'nope'], {}, /^psy node: unknown node 'nope'/],
      [['node', 'rotate', 'nope'], p.env, /^psy node: unknown node 'nope'/],
      [
        ['node', 'new', 'beta', '--mac', '52:54:00:00:00:01'],
        p.env,
        /^psy node: MAC 52:54:00:00:00:01 is already used by node 'alpha' \(nodes\/alpha\/node\.json\)\n$/,
      ],
      [
        ['node', 'new', 'beta', '--mac', '52:54:00:00:00:02', '--psynet-ip', '10.10.10.5/24'],
        p.env,
        /^psy node: psynet address 10\.10\.10\.5 is already used by node 'alpha'/,
      ],
      [['node', 'new', 'alpha', '--mac', '52:54:00:00:00:09'], p.env, /^psy node: node 'alpha' already exists/],
      [['node', 'new', 'beta', '--mac', '01:00:5e:00:00:01'], p.env, /^psy node: 01:00:5e:00:00:01 is a multicast address/],
      [['node', 'new', 'beta', '--mac', 'zz'], p.env, /^psy node: 'zz' is not a MAC address/],
      [['node', 'new', 'Beta_1', '--mac', '52:54:00:00:00:03'], p.env, /^psy node: node name 'Beta_1' must be a host name/],
      [['node', 'new', 'beta'], p.env, /^psy node: psy node new needs --mac MAC/],
      [['node', 'new', 'beta', '--mac', '52:54:00:00:00:03', '--psynet-ip', '10.10.300.1/22'], p.env, /^psy node: '10\.10\.300\.1\/22' is not an IPv4 address/],
      [
        ['node', 'rotate', 'alpha'],
        {PSY_AGE_IDENTITY: ageKeygen(mkdtempSync(join(tmpdir(), 'psy-other-')), 'k').file},
        /^psy node: nodes\/alpha\/secrets\.age: cannot be decrypted with the age identity from PSY_AGE_IDENTITY \(.*\) \(it is not one of the file's recipients\)\n$/,
      ],
      [['node', 'rotate', 'alpha'], {}, /^psy node: no age identity to decrypt node secrets: .*age\.key cannot be read; set PSY_AGE_IDENTITY/],
      [['node', 'frob'], {}, /^psy node: unknown subcommand 'frob'/],
    ];
    for (const [args, env, pattern] of cases) {
      const r = await psy(args, p.dir, env);
      expectOneLine(r, pattern);
      expect(snapshotTree(p.dir), args.join(' ')).toEqual(tree);
    }
  });

  it('names the Debian package of a missing tool, and reports damaged files by name', async () => {
    p = nodeProject('psy-node-cli-');
    expect((await psy(['node', 'new', 'alpha', '--mac', '52:54:00:00:00:01'], p.dir, p.env)).code).toBe(0);
    // a PATH with everything but ssh-keygen
    const bin = mkdtempSync(join(tmpdir(), 'psy-nobin-'));
    for (const t of ['age', 'nebula-cert']) symlinkSync(spawnSync('sh', ['-c', `command -v ${t}`], {encoding: 'utf8'}).stdout.trim(), join(bin, t));
    const tree = snapshotTree(p.dir);
    const missing = await psy(['node', 'new', 'beta', '--mac', '52:54:00:00:00:02'], p.dir, {...p.env, PATH: bin});
    expectOneLine(missing, /^psy node: ssh-keygen not found on PATH: install the Debian package openssh-client \(apt-get install openssh-client\)\n$/);
    const rot = await psy(['node', 'rotate', 'alpha', '--ssh'], p.dir, {...p.env, PATH: bin});
    expectOneLine(rot, /openssh-client/);
    expect(snapshotTree(p.dir)).toEqual(tree);
    rmSync(bin, {recursive: true, force: true});

    writeFileSync(join(p.dir, 'nodes/alpha/secrets.age'), 'garbage\n');
    const tree2 = snapshotTree(p.dir);
    expectOneLine(await psy(['node', 'rotate', 'alpha'], p.dir, p.env), /^psy node: nodes\/alpha\/secrets\.age: not an age-encrypted file/);
    expectOneLine(await psy(['node', 'show', 'alpha', '--check'], p.dir, p.env), /^psy node: nodes\/alpha\/secrets\.age: not an age-encrypted file/);
    writeFileSync(join(p.dir, 'nodes/alpha/node.json'), '{"name": "alpha", "mac": 5}');
    expectOneLine(await psy(['node', 'list'], p.dir, {}), /^psy node: nodes\/alpha\/node\.json: mac is missing\n$/);
    writeFileSync(join(p.dir, 'nodes/alpha/node.json'), '{');
    expectOneLine(await psy(['node', 'show', 'alpha'], p.dir, {}), /^psy node: nodes\/alpha\/node\.json: not JSON/);
    delete tree2['nodes/alpha/node.json'];
    const now = snapshotTree(p.dir);
    delete now['nodes/alpha/node.json'];
    expect(now).toEqual(tree2);
  });

  it('needs operator recipients in settings.nodes', async () => {
    p = nodeProject('psy-node-cli-', () => 'export default {targets: [], settings: {}};\n');
    expectOneLine(
      await psy(['node', 'new', 'alpha', '--mac', '52:54:00:00:00:01'], p.dir, p.env),
      /^psy node: settings\.nodes\.recipients is empty: list the operators' age recipients/,
    );
    writeFileSync(join(p.dir, 'build.config.ts'), "export default {targets: [], settings: {nodes: {recipients: ['age1nope']}}};\n");
    expectOneLine(await psy(['node', 'list'], p.dir, {}), /^psy node: settings\.nodes\.recipients\[0\] is not an age X25519 recipient/);
    expect(snapshotTree(p.dir)).not.toHaveProperty('nodes/alpha/node.json');
  });
});
