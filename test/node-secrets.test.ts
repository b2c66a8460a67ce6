import {spawnSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {decrypt, defaultIdentityFile, encrypt, loadIdentities, newIdentity} from '../src/node/age.js';
import {newSshHostKey, sshFingerprint} from '../src/node/keys.js';
import {parseNodeSettings} from '../src/node/settings.js';
import {normalizeCidr, normalizeMac, parseRecord, sealSecrets, secretsTar, unsealSecrets} from '../src/node/store.js';
import {ageKeygen} from './helpers/node-project.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-node-secrets-'));
});
afterEach(() => rmSync(dir, {recursive: true, force: true}));

describe('age encryption of node secrets', () => {
  it('writes files the age CLI decrypts, and decrypts what the age CLI wrote', async () => {
    const op = ageKeygen(dir, 'op.key');
    const other = await newIdentity();
    const sealed = await encrypt(Buffer.from('secret\n'), [op.recipient, other.recipient]);
    writeFileSync(join(dir, 'x.age'), sealed);
    const d = spawnSync('age', ['-d', '-i', op.file, join(dir, 'x.age')], {encoding: 'utf8'});
    expect(d.status, d.stderr).toBe(0);
    expect(d.stdout).toBe('secret\n');
    // and the other way round: age -a -r → psy
    const e = spawnSync('age', ['-a', '-r', other.recipient], {input: 'from the cli\n'});
    expect(e.status).toBe(0);
    const plain = await decrypt(e.stdout.toString(), {keys: [other.identity], source: 'test'}, 'cli.age');
    expect(Buffer.from(plain).toString()).toBe('from the cli\n');
  });

  it('names the file and the identity source when it cannot decrypt', async () => {
    const a = await newIdentity();
    const b = await newIdentity();
    const sealed = await encrypt(Buffer.from('x'), [a.recipient]);
    await expect(decrypt(sealed, {keys: [b.identity], source: 'PSY_AGE_IDENTITY'}, 'nodes/n/secrets.age')).rejects.toThrow(
      "nodes/n/secrets.age: cannot be decrypted with the age identity from PSY_AGE_IDENTITY (it is not one of the file's recipients)",
    );
    await expect(decrypt('hello', {keys: [a.identity], source: 's'}, 'f.age')).rejects.toMatchObject({
      code: 'corrupt-secrets',
      message: expect.stringMatching(/^f\.age: not an age-encrypted file/),
    });
    const damaged = sealed.replace(/\n(.)(.)/, (_m, x: string, y: string) => `\n${y}${x}`);
    await expect(decrypt(damaged, {keys: [a.identity], source: 's'}, 'f.age')).rejects.toMatchObject({
      code: expect.stringMatching(/corrupt-secrets|wrong-identity/),
    });
  });

  it('finds the identity in PSY_AGE_IDENTITY (a key or a file), else ~/.config/psy/age.key', async () => {
    const op = ageKeygen(dir, 'op.key');
    expect(loadIdentities({PSY_AGE_IDENTITY: op.key})).toEqual({keys: [op.key], source: 'PSY_AGE_IDENTITY'});
    expect(loadIdentities({PSY_AGE_IDENTITY: op.file})).toEqual({keys: [op.key], source: `PSY_AGE_IDENTITY (${op.file})`});
    const home = join(dir, 'home');
    mkdirSync(join(home, '.config/psy'), {recursive: true});
    writeFileSync(join(home, '.config/psy/age.key'), readFileSync(op.file));
    expect(defaultIdentityFile({HOME: home})).toBe(join(home, '.config/psy/age.key'));
    expect(loadIdentities({HOME: home}).keys).toEqual([op.key]);
    expect(loadIdentities({HOME: '/x', XDG_CONFIG_HOME: join(home, '.config')}).keys).toEqual([op.key]);
    expect(() => loadIdentities({HOME: join(dir, 'none')})).toThrow(
      /^no age identity to decrypt node secrets: .*none\/\.config\/psy\/age\.key cannot be read; set PSY_AGE_IDENTITY/,
    );
    writeFileSync(join(dir, 'bad.key'), '# nothing\nAGE-SECRET-KEY-1NOPE\n');
    expect(() => loadIdentities({PSY_AGE_IDENTITY: join(dir, 'bad.key')})).toThrow(/bad\.key\): not an age X25519 identity/);
  });

  it('seals the secret files as a tar and refuses a tar that is not flat files', async () => {
    const id = await newIdentity();
    const files = new Map([
      ['nodename', Buffer.from('n\n')],
      ['mactab', Buffer.from('psy0 52:54:00:00:00:01\n')],
    ]);
    const sealed = await sealSecrets(files, [id.recipient], 0);
    const back = await unsealSecrets(sealed, {keys: [id.identity], source: 't'}, 'n.age');
    expect([...back.keys()].sort()).toEqual(['mactab', 'nodename']);
    expect(back.get('mactab')!.toString()).toBe('psy0 52:54:00:00:00:01\n');
    expect(secretsTar(files, 0).equals(secretsTar(new Map([...files].reverse()), 0))).toBe(true);
    await expect(
      unsealSecrets(await encrypt(Buffer.from('not a tar at all'.repeat(40)), [id.recipient]), {keys: [id.identity], source: 't'}, 'n.age'),
    ).rejects.toThrow(/^n\.age: the decrypted content is not a tar of secret files/);
    await expect(
      unsealSecrets(await encrypt(secretsTar(new Map([['mactab', Buffer.from('x')]]), 0), [id.recipient]), {keys: [id.identity], source: 't'}, 'n.age'),
    ).rejects.toThrow('n.age: has no nodename');
  });
});

describe('node records and settings', () => {
  it('computes the SSH fingerprint as ssh-keygen -l does', async () => {
    const k = await newSshHostKey('fp');
    writeFileSync(join(dir, 'k.pub'), k.publicKey + '\n');
    const l = spawnSync('ssh-keygen', ['-l', '-f', join(dir, 'k.pub')], {encoding: 'utf8'});
    expect(l.stdout.split(' ')[1]).toBe(sshFingerprint(k.publicKey));
  });

  it('normalizes MACs and psynet addresses', () => {
    expect(normalizeMac('52-54-00-AB-CD-EF')).toBe('52:54:00:ab:cd:ef');
    expect(() => normalizeMac('03:00:00:00:00:00')).toThrow(/multicast/);
    expect(normalizeCidr('10.10.10.5/22')).toBe('10.10.10.5/22');
    expect(() => normalizeCidr('10.10.10.5')).toThrow(/not an IPv4 address with its prefix/);
    expect(() => normalizeCidr('10.10.010.5/22')).toThrow(/not an IPv4 address/);
  });

  it('names the field of a damaged node.json', () => {
    const ok = {
      name: 'n',
      mac: '52:54:00:00:00:01',
      public: {ssh: 'ssh-ed25519 AAAA root@n', age: 'age16y6whv8aan0s03uh3ts0ets4wn5l4jfuudtegcxmd75x94m3cd9q8pxjnu'},
    };
    expect(parseRecord(JSON.stringify(ok), 'nodes/n/node.json', 'n').mac).toBe('52:54:00:00:00:01');
    expect(() => parseRecord(JSON.stringify({...ok, name: 'm'}), 'f', 'n')).toThrow("f: name must be 'n' (the folder's name)");
    expect(() => parseRecord(JSON.stringify({...ok, public: {...ok.public, age: 'x'}}), 'f', 'n')).toThrow('f: public.age is not an age recipient');
    expect(() => parseRecord(JSON.stringify({...ok, psynet: {ip: '1.2.3.4'}}), 'f', 'n')).toThrow(/^f: psynet\.ip '1\.2\.3\.4' is not an IPv4 address/);
  });

  it('validates settings.nodes', () => {
    expect(parseNodeSettings(undefined)).toEqual({dir: 'nodes', psynetDir: 'psynet', recipients: [], ssh: {user: 'root', options: []}, hosts: {}, copy: []});
    expect(() => parseNodeSettings({recipient: []})).toThrow(/^settings\.nodes\.recipient: unknown setting/);
    expect(() => parseNodeSettings({dir: '../x'})).toThrow('settings.nodes.dir must be a folder inside the project');
    expect(() => parseNodeSettings({ssh: {port: 0}})).toThrow('settings.nodes.ssh.port must be a port number');
    expect(() => parseNodeSettings({hosts: {n: '-oProxyCommand=x'}})).toThrow('settings.nodes.hosts.n must be a host name or address');
  });
});
