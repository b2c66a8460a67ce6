import {spawnSync} from 'node:child_process';
import {existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';

let dir: string;
beforeAll(() => assertBuilt());
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-sign-cli-'));
  writeFileSync(join(dir, 'os.tar'), Buffer.alloc(100_000, 7));
});
afterEach(() => {
  rmSync(dir, {recursive: true, force: true});
});

const minisignV = (args: string[]) => spawnSync('minisign', ['-V', ...args], {cwd: dir, encoding: 'utf8'});

describe('psy keygen / sign / verify', () => {
  it('round-trips with an unencrypted key, and minisign agrees', async () => {
    const k = await psy(['keygen', '-W', '-s', 'k/release.key'], dir);
    expect(k.code, k.stderr).toBe(0);
    expect(k.stdout).toMatch(/^key ID [0-9A-F]{16} \(unencrypted\)$/m);
    expect(statSync(join(dir, 'k', 'release.key')).mode & 0o777).toBe(0o600);
    const s = await psy(['sign', '-s', 'k/release.key', '--field', 'type=psyopsOS', 'os.tar'], dir);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toBe('os.tar: signed by k/release.key, trusted comment: filename=os.tar size=100000 type=psyopsOS\n');
    const v = await psy(['verify', '-p', 'k/release.pub', 'os.tar', '--expect', 'type=psyopsOS'], dir);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(
      /^os\.tar: signature and trusted comment verified \(key [0-9A-F]{16}, prehashed\); trusted comment: filename=os\.tar size=100000 type=psyopsOS$/m,
    );
    expect(minisignV(['-p', 'k/release.pub', '-m', 'os.tar']).status).toBe(0);
    const q = await psy(['verify', '-Q', '-p', 'k/release.pub', 'os.tar'], dir);
    expect(q.stdout).toBe('filename=os.tar size=100000 type=psyopsOS\n');

    const wrongType = await psy(['verify', '-p', 'k/release.pub', 'os.tar', '--expect', 'type=psyopsESP'], dir);
    expect(wrongType.code).toBe(1);
    expect(wrongType.stderr).toMatch(/^psy verify: .*os\.tar\.minisig: trusted comment has type=psyopsOS, expected type=psyopsESP\n$/);
  });

  it('uses a password-protected key with the password from the environment or a file', async () => {
    const k = await psy(['keygen', '--fast-kdf', '-s', 'r.key', '-p', 'r.pub'], dir, {PSY_SIGNING_PASSWORD: 'hunter2'});
    expect(k.code, k.stderr).toBe(0);
    // minisign takes the password on stdin when it is not a terminal
    const m = spawnSync('minisign', ['-S', '-s', 'r.key', '-m', 'os.tar', '-t', 'a=b', '-x', 'm.minisig'], {cwd: dir, input: 'hunter2\n', encoding: 'utf8'});
    expect(m.status, m.stderr).toBe(0);
    const vm = await psy(['verify', '-p', 'r.pub', '-x', 'm.minisig', 'os.tar'], dir);
    expect(vm.code, vm.stderr).toBe(0);

    const bad = await psy(['sign', '-s', 'r.key', 'os.tar'], dir, {PSY_SIGNING_PASSWORD: 'wrong'});
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('psy sign: r.key: wrong password (or corrupted key file)\n');
    expect(existsSync(join(dir, 'os.tar.minisig'))).toBe(false);
    const none = await psy(['sign', '-s', 'r.key', 'os.tar'], dir);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^psy sign: r\.key is password-protected: set PSY_SIGNING_PASSWORD, .*\n$/);

    writeFileSync(
      join(dir, 'build.config.ts'),
      `export default {targets: [], settings: {signing: {secretKey: 'r.key', publicKey: 'r.pub', passwordFile: 'pw.txt'}}};\n`,
    );
    writeFileSync(join(dir, 'pw.txt'), 'hunter2\n');
    const s = await psy(['sign', 'os.tar'], dir);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toBe('');
    const v = await psy(['verify', 'os.tar'], dir);
    expect(v.code, v.stderr).toBe(0);
    expect(minisignV(['-p', 'r.pub', '-m', 'os.tar']).status).toBe(0);
  });

  it('falls back to a development key with a warning', async () => {
    const s = await psy(['sign', 'os.tar'], dir);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toMatch(/^warning: no signing key configured, using the development key cache\/signing\/dev\.key; it must not sign releases/);
    expect(existsSync(join(dir, 'cache', 'signing', 'dev.pub'))).toBe(true);
    const v = await psy(['verify', '--dev-key', 'os.tar'], dir);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stderr).toMatch(/development key/);
    expect(minisignV(['-p', 'cache/signing/dev.pub', '-m', 'os.tar']).status).toBe(0);
  });

  it('rejects tampering, a corrupted key and a signature for another file in one line', async () => {
    await psy(['keygen', '-W', '-s', 'a.key'], dir);
    await psy(['keygen', '-W', '-s', 'b.key'], dir);
    expect((await psy(['sign', '-s', 'a.key', 'os.tar'], dir)).code).toBe(0);
    const other = await psy(['verify', '-p', 'b.pub', 'os.tar'], dir);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^psy verify: .*os\.tar\.minisig: signed by key [0-9A-F]{16}, but the public key is [0-9A-F]{16}\n$/);

    const sig = readFileSync(join(dir, 'os.tar.minisig'), 'utf8');
    writeFileSync(join(dir, 'os.tar.minisig'), sig.replace('size=100000', 'size=100001'));
    const edited = await psy(['verify', '-p', 'a.pub', 'os.tar'], dir);
    expect(edited.code).toBe(1);
    expect(edited.stderr).toMatch(/trusted comment verification failed: the trusted comment was altered\n$/);
    expect(edited.stderr.split('\n')).toHaveLength(2);

    writeFileSync(join(dir, 'os.tar.minisig'), sig);
    writeFileSync(join(dir, 'other.tar'), 'something else');
    const another = await psy(['verify', '-p', 'a.pub', '-x', 'os.tar.minisig', 'other.tar'], dir);
    expect(another.code).toBe(1);
    expect(another.stderr).toMatch(/signature verification failed: the file does not match its signature\n$/);

    const key = readFileSync(join(dir, 'a.key'), 'utf8').split('\n');
    writeFileSync(join(dir, 'a.key'), `${key[0]}\n${key[1]!.slice(0, 60)}\n`);
    const corrupt = await psy(['sign', '-s', 'a.key', 'os.tar'], dir);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toBe('psy sign: a.key: not a minisign Ed25519 secret key (corrupted or wrong file)\n');

    const badTc = await psy(['sign', '-s', 'b.key', '-t', 'no pairs here', 'os.tar'], dir);
    expect(badTc.code).toBe(1);
    expect(badTc.stderr).toBe("psy sign: --trusted-comment: 'no' is not a key=value pair\n");
  });

  it('asks for the password on a terminal, without echo', async () => {
    const k = await psy(['keygen', '--fast-kdf', '-s', 'r.key'], dir, {PSY_SIGNING_PASSWORD: 'hunter2'});
    expect(k.code, k.stderr).toBe(0);
    // `script` gives psy a real pseudo-terminal; the password is typed once the prompt shows
    const {spawn} = await import('node:child_process');
    const {repoRoot} = await import('./helpers/shared-data.js');
    const typed = (password: string) =>
      new Promise<{code: number | null; out: string}>((ok, bad) => {
        const child = spawn('script', ['-qec', `${process.execPath} ${join(repoRoot, 'bin', 'psy.js')} sign -s r.key os.tar`, '/dev/null'], {
          cwd: dir,
          env: {PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, TERM: 'dumb'},
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('Password for r.key: ') && !out.includes('\u0000sent')) {
            out += '\u0000sent';
            child.stdin.write(`${password}\r`);
          }
        });
        child.on('error', bad);
        child.on('close', (code) => ok({code, out: out.replace('\u0000sent', '')}));
      });
    const wrong = await typed('nope');
    expect(wrong.code).toBe(1);
    expect(wrong.out).toContain('psy sign: r.key: wrong password (or corrupted key file)');
    expect(wrong.out).not.toContain('nope');
    const right = await typed('hunter2');
    expect(right.code, right.out).toBe(0);
    expect(right.out).not.toContain('hunter2');
    expect(minisignV(['-p', 'r.pub', '-m', 'os.tar']).status).toBe(0);
  });
});
