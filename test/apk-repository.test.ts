import {createServer, type Server} from 'node:http';
import {cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {pathToFileURL} from 'node:url';
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest';
import {installFromLock, lockWorld, type AlpineContext} from '../src/apk/alpine-root.js';
import type {AlpineSettings} from '../src/apk/settings.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'psy-apk-repo-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true});
});

/** A real HTTP server on loopback serving a folder; `override` swaps the bytes of one path. */
function serve(root: string): Promise<{server: Server; url: string; hits: string[]; override: Map<string, Buffer>}> {
  const hits: string[] = [];
  const override = new Map<string, Buffer>();
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url!, 'http://x').pathname);
    hits.push(path);
    const o = override.get(path);
    if (o) return void res.end(o);
    try {
      res.end(readFileSync(join(root, path)));
    } catch {
      res.statusCode = 404;
      res.end('not found');
    }
  });
  return new Promise((ok) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address() as {port: number};
      ok({server, url: `http://127.0.0.1:${a.port}`, hits, override});
    }),
  );
}

describe.skipIf(!haveAlpineTestData())('repositories: http, folders, cache, offline', () => {
  let fx: FixtureRepository;
  let http: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    fx = await buildFixtureRepository({kernel: false});
    http = await serve(fx.repoDir);
  });
  afterAll(() => http.server.close());

  const settings = (repo: string, keys = fx.keysDir): AlpineSettings => ({
    release: 'v3.20',
    arch: 'x86_64',
    repositories: [repo],
    keys,
    world: [...fx.minirootfsWorld],
  });

  it('locks the minirootfs world over http to the 14 packages of the official image', async () => {
    const project = tempDir();
    const lock = await lockWorld({settings: settings(http.url), projectRoot: project});
    expect(lock.packages.map((p) => p.name).sort()).toEqual([...fx.minirootfsPackages].sort());
    expect(lock.packages.every((p) => p.repository === http.url && /^Q1.{27}=$/.test(p.checksum))).toBe(true);
    // dependencies come first: musl before everything linking against it
    const at = (n: string) => lock.packages.findIndex((p) => p.name === n);
    expect(at('musl')).toBeLessThan(at('busybox'));
    expect(at('libcrypto3')).toBeLessThan(at('libssl3'));
    expect(at('ssl_client')).toBeGreaterThan(at('libssl3')); // install_if
  });

  it('installs from the lock online, then offline from the content-addressed cache', async () => {
    const project = tempDir();
    const ctx: AlpineContext = {settings: settings(http.url), projectRoot: project};
    const lock = await lockWorld(ctx);
    http.hits.length = 0;
    await installFromLock({...ctx, lock, targetRoot: join(project, 'root1'), sourceDateEpoch: 1});
    expect(http.hits.filter((h) => h.endsWith('.apk')).length).toBe(14);
    const cached = readdirSync(join(project, 'cache/apk/packages'));
    expect(cached.length).toBe(14);
    expect(cached.every((f) => /^[0-9a-f]{40}\.apk$/.test(f))).toBe(true);

    http.hits.length = 0;
    const offline = await installFromLock({...ctx, offline: true, lock, targetRoot: join(project, 'root2'), sourceDateEpoch: 1});
    expect(http.hits).toEqual([]);
    expect(offline.installed.length).toBe(14);
    expect(readFileSync(join(project, 'root2/etc/apk/world'), 'utf8')).toBe(fx.minirootfsWorld.slice().sort().join('\n') + '\n');
    // offline lock resolution works from the cached index too
    const again = await lockWorld({...ctx, offline: true});
    expect(again).toEqual(lock);
  });

  it('refuses a lock that lacks a dependency', async () => {
    const project = tempDir();
    const ctx: AlpineContext = {settings: settings(http.url), projectRoot: project};
    const lock = await lockWorld(ctx);
    const cut = {...lock, packages: lock.packages.filter((p) => p.name !== 'musl')};
    await expect(installFromLock({...ctx, lock: cut, targetRoot: join(project, 'root'), sourceDateEpoch: 1})).rejects.toThrow(
      /the lock is not complete \('so:libc\.musl-x86_64\.so\.1' required by \S+ is not in the set.*\): run psy lock/,
    );
  });

  it('offline without a cache says which URL it would need', async () => {
    const project = tempDir();
    await expect(lockWorld({settings: settings(http.url), projectRoot: project, offline: true})).rejects.toThrow(
      `offline: no cached index for ${http.url}/x86_64/APKINDEX.tar.gz`,
    );
  });

  it('names the URL when the network fails', async () => {
    const dead = await serve(fx.repoDir);
    const url = dead.url;
    await new Promise((ok) => dead.server.close(ok));
    await expect(lockWorld({settings: settings(url), projectRoot: tempDir()})).rejects.toThrow(
      new RegExp(`cannot download ${url.replace(/\./g, '\\.')}/x86_64/APKINDEX\\.tar\\.gz: ECONNREFUSED`),
    );
    await expect(lockWorld({settings: settings(`${http.url}/nope`), projectRoot: tempDir()})).rejects.toThrow(
      `cannot download ${http.url}/nope/x86_64/APKINDEX.tar.gz: HTTP 404`,
    );
  });

  it('refuses a package whose bytes do not match the index checksum', async () => {
    const project = tempDir();
    const ctx: AlpineContext = {settings: settings(http.url), projectRoot: project};
    const lock = await lockWorld(ctx);
    const zlib = lock.packages.find((p) => p.name === 'zlib')!;
    // a real, validly signed package, but not the one the index names
    http.override.set(`/x86_64/zlib-${zlib.version}.apk`, readFileSync(join(fx.archDir, 'scanelf-1.3.7-r2.apk')));
    try {
      await expect(installFromLock({...ctx, lock, targetRoot: join(project, 'root'), sourceDateEpoch: 1})).rejects.toThrow(
        /zlib-1\.3\.1-r1\.apk: checksum Q1\S+ does not match the index/,
      );
    } finally {
      http.override.clear();
    }
    expect(readdirSync(join(project, 'cache/apk/packages')).some((f) => f.startsWith('zlib'))).toBe(false);
  });

  it('refuses an index signed by a key that is not configured', async () => {
    await expect(lockWorld({settings: settings(http.url, join(alpineTestData, 'keys')), projectRoot: tempDir()})).rejects.toThrow(
      /index http:\/\/127\.0\.0\.1:\d+\/x86_64\/APKINDEX\.tar\.gz is signed by fixture-[0-9a-f]+\.rsa\.pub, which is not among the trusted keys/,
    );
  });

  it('reads plain folders (relative to the project) and file:// URLs', async () => {
    const project = tempDir();
    cpSync(fx.repoDir, join(project, 'alpine', 'repo'), {recursive: true});
    const viaFolder = await lockWorld({settings: settings('alpine/repo'), projectRoot: project});
    expect(viaFolder.packages.length).toBe(14);
    const url = pathToFileURL(fx.repoDir).href;
    const viaUrl = await lockWorld({settings: settings(url), projectRoot: project});
    expect(viaUrl.packages.map((p) => p.checksum)).toEqual(viaFolder.packages.map((p) => p.checksum));
    // a tampered index in a folder is refused
    const idx = join(project, 'alpine/repo/x86_64/APKINDEX.tar.gz');
    const bytes = readFileSync(idx);
    bytes[bytes.length - 100]! ^= 0x10;
    writeFileSync(idx, bytes);
    await expect(lockWorld({settings: settings('alpine/repo'), projectRoot: project})).rejects.toThrow(/APKINDEX\.tar\.gz.*(does not verify|damaged|CRC)/);
  });
});
