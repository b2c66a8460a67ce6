import {execFile} from 'node:child_process';
import {readdirSync, readFileSync} from 'node:fs';
import {mkdtemp, rm} from 'node:fs/promises';
import {createServer, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';
import {tmpdir} from 'node:os';
import {join, relative} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {openRepositories} from '../src/apk/alpine-root.js';
import {download} from '../src/apk/repository.js';
import {readLock} from '../src/apk/lockfile.js';
import {validateAlpineSettings} from '../src/apk/settings.js';
import {alpineSettingsFor, withDefaults} from '../targets/settings.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {alpineTestData, haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {fixtureSettings, writeProject} from './os-project.js';

/**
 * A mirror on 127.0.0.1 laid out as Alpine's (`<release>/<repo>/<arch>/…`), serving
 * files from memory. It can cut a file off half-way through its first download (the
 * connection closed mid-body) and logs every request with its Range header.
 */
class Mirror {
  readonly files = new Map<string, Buffer>();
  /** Path → how many more downloads of it are cut off half-way. */
  readonly cuts = new Map<string, number>();
  /** Answer Range requests with the whole file, as servers without range support do. */
  ignoreRange = false;
  readonly requests: Array<{path: string; range: string | undefined}> = [];
  #server: Server | undefined;
  base = '';

  async start(): Promise<void> {
    this.#server = createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      this.requests.push({path, range: req.headers.range});
      const body = this.files.get(path);
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const from = m && !this.ignoreRange ? Number(m[1]) : 0;
      const part = body.subarray(from);
      if (from > 0) res.writeHead(206, {'content-length': part.length, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}`});
      else res.writeHead(200, {'content-length': body.length, 'accept-ranges': 'bytes'});
      const cuts = this.cuts.get(path) ?? 0;
      if (cuts > 0) {
        this.cuts.set(path, cuts - 1);
        res.write(part.subarray(0, part.length >> 1), () => res.socket?.destroy());
        return;
      }
      res.end(part);
    });
    await new Promise<void>((r) => this.#server!.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
  }

  /** Serves every file of a folder at `<prefix>/<name>`. */
  addFolder(prefix: string, dir: string): void {
    for (const name of readdirSync(dir)) this.files.set(`${prefix}/${name}`, readFileSync(join(dir, name)));
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise((r) => this.#server?.close(r));
  }
}

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** The psy CLI as a user runs it (asynchronously: the mirror answers from this process). */
function psy(cwd: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(repoRoot, 'bin', 'psy.js'), ...args], {cwd, maxBuffer: 1 << 26}, (err, stdout, stderr) =>
      resolve({status: err ? ((err as {code?: number}).code ?? 1) : 0, stdout, stderr}),
    );
  });
}

describe('downloads cut off half-way', () => {
  const mirror = new Mirror();
  const body = Buffer.from(Array.from({length: 300_000}, (_, i) => (i * 7919) % 251));
  beforeAll(async () => {
    await mirror.start();
    mirror.files.set('/f', body);
  });
  afterAll(() => mirror.stop());

  it('start over when the server ignores the Range request', async () => {
    mirror.ignoreRange = true;
    mirror.cuts.set('/f', 2);
    try {
      expect((await download(`${mirror.base}/f`)).equals(body)).toBe(true);
    } finally {
      mirror.ignoreRange = false;
    }
  });

  it('give up after a few tries with one line saying so', async () => {
    mirror.cuts.set('/f', 10);
    const err = (await download(`${mirror.base}/f`, {attempts: 3}).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'apk-network'});
    expect(err.message).toMatch(new RegExp(`^cannot download ${mirror.base}/f: transfer cut off after \\d+ of 300000 bytes( \\(\\w+\\))?, 3 tries$`));
    expect(mirror.cuts.get('/f')).toBe(7);
  });
});

describe('downloads capped', () => {
  // a server that streams without end (chunked, no length) or announces too much
  let server: Server;
  let base = '';
  let streamed = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/announced') {
        res.writeHead(200, {'content-length': String(10 << 20)});
        res.end(Buffer.alloc(16));
        return;
      }
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = (): void => {
        while (!res.destroyed && streamed < 64 << 20) {
          streamed += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => res.destroy());
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('stop a body that goes past the limit, with one line, without reading the rest', async () => {
    const err = (await download(`${base}/endless`, {maxBytes: 1 << 20}).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'apk-network'});
    expect(err.message).toBe(`cannot download ${base}/endless: body goes past the 1048576 bytes allowed`);
    expect(streamed).toBeLessThan(32 << 20);
  });

  it('refuse an announced length over the limit before reading the body', async () => {
    const err = (await download(`${base}/announced`, {maxBytes: 1 << 20}).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe(`cannot download ${base}/announced: the server announces 10485760 bytes, more than the 1048576 allowed`);
  });
});

const rangeRequests = (m: Mirror, path: string) => m.requests.filter((r) => r.path === path && r.range !== undefined);

describe.skipIf(!haveAlpineTestData())("psy lock and psy build through HTTP from a mirror laid out as Alpine's", () => {
  const mirror = new Mirror();
  let base: string;
  let fx: FixtureRepository;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'psy-mirror-e2e-'));
    fx = await buildFixtureRepository();
    await mirror.start();
    // Alpine's real v3.16 main index and packages, signed by Alpine
    const real = join(alpineTestData, 'v3.16', 'main', 'x86_64');
    mirror.files.set('/alpine/v3.16/main/x86_64/APKINDEX.tar.gz', readFileSync(join(real, 'APKINDEX.tar.gz')));
    mirror.files.set('/alpine/v3.16/main/x86_64/strace-5.17-r0.apk', readFileSync(join(real, 'strace-5.17-r0.apk')));
    // the index lists curl 7.83.1-r4; these bytes are a real, validly signed curl 7.83.1-r1
    mirror.files.set('/alpine/v3.16/main/x86_64/curl-7.83.1-r4.apk', readFileSync(join(real, 'curl-7.83.1-r1.apk')));
    // the fixture's packages, signed into their own repository
    mirror.addFolder('/alpine/v3.20/main/x86_64', fx.archDir);
  }, 900_000);
  afterAll(async () => {
    await mirror.stop();
    if (base) await rm(base, {recursive: true, force: true});
  });

  it("Alpine's real signed index: psy lock pins what it lists, verified with the shipped keys in alpine/keys", async () => {
    const dir = join(base, 'real');
    const settings = {
      release: '3.16',
      repositories: [`${mirror.base}/alpine/v{release}/main`],
      keysDir: relative(dir, join(repoRoot, 'alpine', 'keys')),
      world: ['strace', 'curl'],
      ownPackages: [],
    };
    await writeProject(dir, settings, {lock: false});
    mirror.cuts.set('/alpine/v3.16/main/x86_64/APKINDEX.tar.gz', 1);
    const r = await psy(dir, 'lock');
    expect(r.status, r.stderr).toBe(0);
    // the index was cut off half-way once and resumed from where it stopped
    expect(rangeRequests(mirror, '/alpine/v3.16/main/x86_64/APKINDEX.tar.gz')).toHaveLength(1);
    const lock = readLock(join(dir, 'alpine', 'packages.lock.json'));
    const strace = lock.packages.find((p) => p.name === 'strace')!;
    expect(strace).toEqual({name: 'strace', version: '5.17-r0', repository: `${mirror.base}/alpine/v3.16/main`, checksum: 'Q18y9jy9MgtvQFXTntDQ3if2axAkk='});
    expect(lock.packages.map((p) => p.name)).toEqual(expect.arrayContaining(['musl', 'curl', 'libcurl', 'linux-lts', 'mkinitfs']));

    // the locked packages come over HTTP: strace cut off half-way and resumed, then
    // verified; curl's bytes are another package than the lock's and are refused
    const {client, specs} = openRepositories({settings: validateAlpineSettings(alpineSettingsFor(withDefaults(settings))), projectRoot: dir});
    mirror.cuts.set('/alpine/v3.16/main/x86_64/strace-5.17-r0.apk', 1);
    const pkg = await client.package(specs[0]!, 'strace', '5.17-r0', strace.checksum);
    expect(pkg.signedBy).toBe('alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub');
    expect(rangeRequests(mirror, '/alpine/v3.16/main/x86_64/strace-5.17-r0.apk')).toHaveLength(1);
    const curl = lock.packages.find((p) => p.name === 'curl')!;
    const err = (await client.package(specs[0]!, 'curl', curl.version, curl.checksum).catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({code: 'apk-checksum-mismatch'});
    expect(err.message).not.toContain('\n');
    expect(err.message).toContain(`${mirror.base}/alpine/v3.16/main/x86_64/curl-7.83.1-r4.apk`);
  }, 300_000);

  it('the fixture repository: psy lock and psy build diskimg over HTTP, one download cut off half-way', async () => {
    const dir = join(base, 'fixture');
    await writeProject(dir, fixtureSettings(dir, fx, {repositories: [`${mirror.base}/alpine/v{release}/main`]}), {lock: false});
    const lockRun = await psy(dir, 'lock');
    expect(lockRun.status, lockRun.stderr).toBe(0);
    const lock = readLock(join(dir, 'alpine', 'packages.lock.json'));
    expect(lock.packages.every((p) => p.repository === `${mirror.base}/alpine/v3.20/main`)).toBe(true);

    const busybox = lock.packages.find((p) => p.name === 'busybox')!;
    const path = `/alpine/v3.20/main/x86_64/busybox-${busybox.version}.apk`;
    mirror.cuts.set(path, 1);
    const r = await psy(dir, 'build', 'diskimg');
    expect(r.status, r.stderr).toBe(0);
    expect(rangeRequests(mirror, path)).toHaveLength(1);
    // every locked package came over HTTP, once
    for (const p of lock.packages) {
      const gets = mirror.requests.filter((q) => q.path === `/alpine/v3.20/main/x86_64/${p.name}-${p.version}.apk` && q.range === undefined);
      expect(gets, p.name).toHaveLength(1);
    }
    const again = await psy(dir, 'build', 'diskimg');
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/no work to do/);
  }, 900_000);

  it('a package whose bytes do not match the lock is refused with one line naming it', async () => {
    const dir = join(base, 'tampered');
    await writeProject(dir, fixtureSettings(dir, fx, {repositories: [`${mirror.base}/alpine/v{release}/main`]}));
    const lock = readLock(join(dir, 'alpine', 'packages.lock.json'));
    const musl = lock.packages.find((p) => p.name === 'musl')!;
    const zlib = lock.packages.find((p) => p.name === 'zlib')!;
    const path = `/alpine/v3.20/main/x86_64/musl-${musl.version}.apk`;
    const genuine = mirror.files.get(path)!;
    // a validly signed package of the same repository, but not the one locked
    mirror.files.set(path, mirror.files.get(`/alpine/v3.20/main/x86_64/zlib-${zlib.version}.apk`)!);
    try {
      const r = await psy(dir, 'build', 'rootfs');
      expect(r.status).toBe(1);
      const out = `${r.stdout}\n${r.stderr}`;
      const lines = out.split('\n').filter((l) => /checksum|does not match|refus/i.test(l));
      expect(lines, out).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`musl-${musl.version.replaceAll('.', '\\.')}\\.apk: checksum Q1\\S+ does not match`));
      expect(r.stderr).not.toMatch(/^\s+at /m);
    } finally {
      mirror.files.set(path, genuine);
    }
    const ok = await psy(dir, 'build', 'rootfs');
    expect(ok.status, ok.stderr).toBe(0);
  }, 900_000);
});
