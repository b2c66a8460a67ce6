import {spawnSync} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeAll, describe, expect, it} from 'vitest';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {nodeProject, snapshotTree, type NodeProjectDir} from './helpers/node-project.js';

let p: NodeProjectDir;
beforeAll(() => assertBuilt());
afterEach(() => rmSync(p.dir, {recursive: true, force: true}));

function secretFile(node: string, file: string): Buffer {
  const plain = spawnSync('age', ['-d', '-i', p.operator.file, join(p.dir, 'nodes', node, 'secrets.age')]);
  expect(plain.status, plain.stderr.toString()).toBe(0);
  return spawnSync('tar', ['-xO', file], {input: plain.stdout}).stdout;
}

/** nebula-cert verify against the repository's CA, and the certificate's public key. */
function verify(node: string): {status: number | null; stderr: string; publicKey: string} {
  const crt = join(p.dir, `${node}.crt`);
  writeFileSync(crt, secretFile(node, 'psynet.host.crt'));
  const v = spawnSync('nebula-cert', ['verify', '-ca', join(p.dir, 'psynet/ca.crt'), '-crt', crt], {encoding: 'utf8'});
  const j = JSON.parse(spawnSync('nebula-cert', ['print', '-json', '-path', crt], {encoding: 'utf8'}).stdout) as {details: {publicKey: string}};
  return {status: v.status, stderr: v.stderr, publicKey: j.details.publicKey};
}

/** The raw public key (hex) of the node's psynet.host.key, derived by node:crypto. */
function keyPublicHex(node: string): string {
  const raw = Buffer.from(
    secretFile(node, 'psynet.host.key')
      .toString()
      .replace(/-----[^-]+-----|\s/g, ''),
    'base64',
  );
  expect(raw).toHaveLength(32);
  const {createPrivateKey, createPublicKey} = process.getBuiltinModule('node:crypto');
  const der = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]);
  return Buffer.from(createPublicKey(createPrivateKey({key: der, format: 'der', type: 'pkcs8'})).export({format: 'jwk'}).x!, 'base64url').toString('hex');
}

describe('psy psynet', () => {
  it('makes the CA once, encrypted, and signs node certificates nebula-cert verifies', async () => {
    p = nodeProject('psy-psynet-');
    // a node made before the CA gets its address recorded, unsigned
    const early = await psy(['node', 'new', 'early', '--mac', '52:54:00:00:00:01', '--psynet-ip', '10.10.10.1/22'], p.dir, p.env);
    expect(early.code, early.stderr).toBe(0);
    expect(early.stderr).toBe('psy node: psynet: no CA yet, 10.10.10.1/22 recorded but not signed (psy psynet ca init, then psy psynet sign early)\n');

    const init = await psy(['psynet', 'ca', 'init'], p.dir, p.env);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toMatch(/^psynet CA "Psynet Nebula Certificate Authority": psynet\/ca\.crt, key psynet\/ca\.key\.age \(encrypted\), valid to 21\d\d-/);
    const caKey = spawnSync('age', ['-d', '-i', p.operator.file, join(p.dir, 'psynet/ca.key.age')], {encoding: 'utf8'});
    expect(caKey.stdout).toMatch(/^-----BEGIN NEBULA ED25519 PRIVATE KEY-----/);
    expect(readFileSync(join(p.dir, 'psynet/ca.key.age'), 'utf8')).not.toContain('NEBULA');
    const tree = snapshotTree(p.dir);
    const again = await psy(['psynet', 'ca', 'init'], p.dir, p.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('psy psynet: the psynet CA already exists (psynet/ca.crt); it is made once\n');
    expect(snapshotTree(p.dir)).toEqual(tree);

    const n = await psy(
      ['node', 'new', 'beta', '--mac', '52:54:00:00:00:02', '--psynet-ip', '10.10.10.2/22', '--psynet-groups', 'psyopsOS,servers'],
      p.dir,
      p.env,
    );
    expect(n.code, n.stderr).toBe(0);
    const v = verify('beta');
    expect(v.status, v.stderr).toBe(0);
    expect(v.publicKey).toBe(keyPublicHex('beta'));
    const show = JSON.parse((await psy(['node', 'show', 'beta', '--json'], p.dir, {})).stdout) as {
      psynetCert: {name: string; ips: string[]; groups: string[]; isCa: boolean};
    };
    expect(show.psynetCert).toMatchObject({name: 'beta', ips: ['10.10.10.2/22'], groups: ['psyopsOS', 'servers'], isCa: false});

    // signing the early node; re-signing with a new address keeps its key
    const s = await psy(['psynet', 'sign', 'early'], p.dir, p.env);
    expect(s.stdout).toMatch(/^node early: psynet certificate 10\.10\.10\.1\/22 groups psyopsOS, valid to /);
    const key1 = keyPublicHex('early');
    expect(verify('early').status).toBe(0);
    const s2 = await psy(['psynet', 'sign', 'early', '--ip', '10.10.10.9/22'], p.dir, p.env);
    expect(s2.code, s2.stderr).toBe(0);
    expect(keyPublicHex('early')).toBe(key1);
    expect(verify('early').publicKey).toBe(key1);
    expect((JSON.parse(readFileSync(join(p.dir, 'nodes/early/node.json'), 'utf8')) as {psynet: {ip: string}}).psynet.ip).toBe('10.10.10.9/22');
    // rotate --psynet makes a new key pair
    expect((await psy(['node', 'rotate', 'early', '--psynet'], p.dir, p.env)).code).toBe(0);
    expect(keyPublicHex('early')).not.toBe(key1);
    expect(verify('early').status).toBe(0);
  });

  it('refuses with one line and writes nothing', async () => {
    p = nodeProject('psy-psynet-');
    await psy(['node', 'new', 'a', '--mac', '52:54:00:00:00:01', '--psynet-ip', '10.10.10.1/22'], p.dir, p.env);
    await psy(['node', 'new', 'b', '--mac', '52:54:00:00:00:02'], p.dir, p.env);
    let tree = snapshotTree(p.dir);
    const noCa = await psy(['psynet', 'sign', 'a'], p.dir, p.env);
    expect(noCa.stderr).toBe('psy psynet: no psynet CA (psynet/ca.crt is missing): run psy psynet ca init\n');
    // a PATH without nebula-cert
    const bin = mkdtempSync(join(tmpdir(), 'psy-nobin-'));
    symlinkSync(spawnSync('sh', ['-c', 'command -v ssh-keygen'], {encoding: 'utf8'}).stdout.trim(), join(bin, 'ssh-keygen'));
    const missing = await psy(['psynet', 'ca', 'init'], p.dir, {...p.env, PATH: bin});
    expect(missing.stderr).toBe('psy psynet: nebula-cert not found on PATH: install the Debian package nebula (apt-get install nebula)\n');
    expect(snapshotTree(p.dir)).toEqual(tree);

    expect((await psy(['psynet', 'ca', 'init'], p.dir, p.env)).code).toBe(0);
    tree = snapshotTree(p.dir);
    const cases: Array<[string[], RegExp]> = [
      [['psynet', 'sign', 'nope'], /^psy psynet: unknown node 'nope'/],
      [['psynet', 'sign', 'b'], /^psy psynet: node 'b' has no psynet address: pass --ip CIDR\n$/],
      [['psynet', 'sign', 'b', '--ip', '10.10.10.1/22'], /^psy psynet: psynet address 10\.10\.10\.1 is already used by node 'a'/],
      [['psynet', 'sign', 'b', '--ip', '10.10.10.2/22', '--groups', 'bad group'], /^psy psynet: psynet group 'bad group' must be/],
      [['psynet', 'ca', 'frob'], /^psy psynet: psy psynet ca: unknown subcommand 'frob'/],
    ];
    for (const [args, pattern] of cases) {
      const r = await psy(args, p.dir, p.env);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const nebulaless = await psy(['psynet', 'sign', 'a'], p.dir, {...p.env, PATH: bin});
    expect(nebulaless.stderr).toBe('psy psynet: nebula-cert not found on PATH: install the Debian package nebula (apt-get install nebula)\n');
    expect(snapshotTree(p.dir)).toEqual(tree);
    rmSync(bin, {recursive: true, force: true});
  });
});
