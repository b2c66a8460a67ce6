import {mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {publishToReplica, serveReplica, type RunningServer} from '../src/deaddrop/index.js';
import {generateKeyPair, parseSignature, parseTrustedComment, verifyBytes} from '../src/sign/index.js';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {makeEsptar, makeOstar} from './helpers/deaddrop-fixtures.js';

let dir: string;
let running: RunningServer | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-serve-'));
});
afterEach(async () => {
  await running?.close();
  running = undefined;
  rmSync(dir, {recursive: true, force: true});
});

describe('psy deaddrop serve', () => {
  it('serves files, answers latest with a redirect a node can follow, and nothing outside', async () => {
    const root = join(dir, 'replica');
    const keys = generateKeyPair();
    makeOstar(join(dir, 'os.tar'), 'serve', {payloadBytes: 10_000});
    makeEsptar(join(dir, 'esp.tar'), 'serve');
    await publishToReplica({
      root,
      keep: 2,
      secretKey: keys.secretKey,
      publicKey: keys.publicKey,
      artifacts: [
        {kind: 'psyopsOS', id: 'x86_64', path: join(dir, 'os.tar'), source: 'ostar', fields: {architecture: 'x86_64'}},
        {kind: 'psyopsESP', id: 'x86_64-uefi', path: join(dir, 'esp.tar'), source: 'esptar'},
      ],
    });
    writeFileSync(join(dir, 'secret'), 'outside');
    symlinkSync('../../secret', join(root, 'os', 'escape'));
    writeFileSync(join(root, '.psy-sync-state.json'), '{}');
    running = await serveReplica({root, host: '127.0.0.1', port: 0});

    const head = await fetch(`${running.url}/os/psyopsOS.x86_64.latest.tar.minisig`, {redirect: 'manual'});
    expect(head.status).toBe(301);
    expect(head.headers.get('location')).toMatch(/^\/os\/psyopsOS\.x86_64\.\d{8}-\d{6}\.tar\.minisig$/);
    // what a node does: follow latest, read the signature, fetch the tarball it names, verify
    const sigRes = await fetch(`${running.url}/os/psyopsOS.x86_64.latest.tar.minisig`);
    expect(sigRes.status).toBe(200);
    const sig = await sigRes.text();
    const filename = parseTrustedComment(parseSignature(sig).trustedComment)['filename']!;
    const tar = Buffer.from(await (await fetch(`${running.url}/os/${filename}`)).arrayBuffer());
    expect(tar.equals(readFileSync(join(root, 'os', filename)))).toBe(true);
    expect(verifyBytes(tar, sig, keys.publicKey).trustedComment).toContain('type=psyopsOS');

    const range = await fetch(`${running.url}/os/${filename}`, {headers: {range: 'bytes=0-511'}});
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer()).equals(tar.subarray(0, 512))).toBe(true);
    const headOnly = await fetch(`${running.url}/os/${filename}`, {method: 'HEAD'});
    expect(headOnly.headers.get('content-length')).toBe(String(tar.length));

    for (const path of ['/os/escape', '/.psy-sync-state.json', '/os/../../secret', '/os/%2e%2e/%2e%2e/secret', '/os/missing', '/os']) {
      expect((await fetch(`${running.url}${path}`, {redirect: 'manual'})).status, path).toBe(404);
    }
    expect((await fetch(`${running.url}/os/${filename}`, {method: 'PUT', body: 'x'})).status).toBe(405);
  });

  it('runs from the CLI on a chosen address and says where', async () => {
    assertBuilt();
    const root = join(dir, 'r');
    mkdirSync(join(root, 'os'), {recursive: true});
    writeFileSync(join(root, 'os', 'a.minisig'), 'sig');
    symlinkSync('a.minisig', join(root, 'os', 'a.latest.tar.minisig'));
    const {spawn} = await import('node:child_process');
    const {repoRoot} = await import('./helpers/shared-data.js');
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'psy.js'), 'deaddrop', 'serve', '--root', root, '--listen', '127.0.0.1:0'], {cwd: dir});
    try {
      const url = await new Promise<string>((ok, bad) => {
        child.stdout.on('data', (d: Buffer) => {
          const m = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(d.toString());
          if (m) ok(m[1]!);
        });
        child.once('exit', (c) => bad(new Error(`serve exited ${c}`)));
      });
      const r = await fetch(`${url}/os/a.latest.tar.minisig`);
      expect(r.url).toBe(`${url}/os/a.minisig`);
      expect(await r.text()).toBe('sig');
    } finally {
      child.kill('SIGTERM');
    }
    const bad = await psy(['deaddrop', 'serve', '--root', root, '--listen', 'nonsense'], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("psy deaddrop: --listen wants HOST:PORT, not 'nonsense'\n");
    const nosub = await psy(['deaddrop', 'frob'], dir);
    expect(nosub.stderr).toBe("psy deaddrop: unknown deaddrop subcommand 'frob' (forcepush, forcepull or serve)\n");
  });
});
