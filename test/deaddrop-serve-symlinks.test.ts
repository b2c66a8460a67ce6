import {mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {serveReplica, type RunningServer} from '../src/deaddrop/index.js';

/**
 * `psy deaddrop serve` resolves the whole request path: a symlinked folder anywhere in it
 * must not lead out of the replica or into a `.psy-*` private folder.
 */
let dir: string;
let root: string;
let running: RunningServer;
const log: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'psy-serve-links-'));
  root = join(dir, 'replica');
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.txt'), 'host secret');
  mkdirSync(join(root, 'os', 'deep'), {recursive: true});
  writeFileSync(join(root, 'os', 'a.tar'), 'tarball');
  writeFileSync(join(root, 'os', 'deep', 'b.tar'), 'deep tarball');
  symlinkSync('a.tar', join(root, 'os', 'a.latest.tar'));
  mkdirSync(join(root, '.psy-cache'));
  writeFileSync(join(root, '.psy-cache', 'state.json'), '{"private":true}');
  // folders leading out: relative, absolute, and two hops (a link to a link)
  symlinkSync('../../outside', join(root, 'os', 'rel-out'));
  symlinkSync(outside, join(root, 'abs-out'));
  symlinkSync('../abs-out', join(root, 'os', 'hop-out'));
  // folders leading into private state
  symlinkSync('.psy-cache', join(root, 'pub'));
  symlinkSync('../.psy-cache', join(root, 'os', 'priv'));
  // a file link whose path walks through a symlinked folder out of the replica
  symlinkSync('../abs-out/secret.txt', join(root, 'os', 'leak.tar'));
  symlinkSync('../pub/state.json', join(root, 'os', 'leak-priv.json'));
  // a symlinked folder that stays inside the replica is followed
  symlinkSync('os', join(root, 'alias'));
  symlinkSync('../os/deep', join(root, 'os', 'deep-alias'));
  running = await serveReplica({root, host: '127.0.0.1', port: 0, log: (l) => log.push(l)});
});
afterAll(async () => {
  await running.close();
  rmSync(dir, {recursive: true, force: true});
});

async function get(path: string): Promise<{status: number; body: string; location: string | null}> {
  const r = await fetch(`${running.url}${path}`, {redirect: 'manual'});
  return {status: r.status, body: await r.text(), location: r.headers.get('location')};
}

describe('psy deaddrop serve and symlinked folders', () => {
  it.each(['/os/rel-out/secret.txt', '/abs-out/secret.txt', '/os/hop-out/secret.txt', '/alias/rel-out/secret.txt', '/os/deep-alias/../rel-out/secret.txt'])(
    'a folder link out of the replica is a 404: %s',
    async (path) => {
      const r = await get(path);
      expect(r.status).toBe(404);
      expect(r.body).toBe('');
    },
  );

  it.each(['/pub/state.json', '/os/priv/state.json', '/alias/priv/state.json'])('a folder link into a private folder is a 404: %s', async (path) => {
    const r = await get(path);
    expect(r.status).toBe(404);
    expect(r.body).not.toContain('private');
  });

  it.each(['/os/leak.tar', '/os/leak-priv.json'])('a file link whose target passes a symlinked folder out or into private state is a 404: %s', async (path) => {
    expect((await get(path)).status).toBe(404);
  });

  it('follows symlinked folders that stay inside the replica', async () => {
    expect(await get('/alias/a.tar')).toMatchObject({status: 200, body: 'tarball'});
    expect(await get('/os/deep-alias/b.tar')).toMatchObject({status: 200, body: 'deep tarball'});
    const latest = await get('/alias/a.latest.tar');
    expect(latest).toMatchObject({status: 301, location: '/os/a.tar'});
  });

  it('logs a refused request as its path and status only, on one line', async () => {
    log.length = 0;
    await get('/os/rel-out/secret.txt');
    await get('/pub/state.json');
    await get('/os/%0aGET%20/forged%20-%3E%20200');
    expect(log).toEqual(['GET /os/rel-out/secret.txt -> 404', 'GET /pub/state.json -> 404', 'GET /os/%0aGET%20/forged%20-%3E%20200 -> 404']);
    for (const line of log) {
      expect(line).not.toContain(dir);
      expect(line).not.toContain('.psy-cache');
    }
  });
});
