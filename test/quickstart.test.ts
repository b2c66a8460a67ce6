import {execFile} from 'node:child_process';
import {createHash} from 'node:crypto';
import {closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, symlinkSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {basename, join} from 'node:path';
import {gzipSync} from 'node:zlib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {mkinitfsFromArchive, minirootfsRelease} from '../scripts/offline-image.js';
import {writeTar, type TarWriteEntry} from '../src/tar/index.js';
import {MINIROOTFS, MKINITFS_DIR} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData, repoRoot, sharedDir} from './helpers/shared-data.js';

// A fresh clone's quick start, as a new user runs it, on a machine that cannot reach
// Alpine's mirror (this one: only npm's registry and Debian's archive are reachable).
// The clone links the working tree's node_modules (PSY_NODE_MODULES) instead of running
// npm ci, and shares the fixture cache (PSY_FIXTURE_CACHE); everything else is the
// script's own doing: the tool check, building psy, the mirror probe, the offline image.

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

let top: string;
let clone: string;

function quickstart(): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      join(clone, 'scripts', 'quickstart.sh'),
      ['--no-boot'],
      {
        cwd: clone,
        maxBuffer: 1 << 26,
        env: {
          ...process.env,
          PSY_NODE_MODULES: join(repoRoot, 'node_modules'),
          PSY_FIXTURE_CACHE: join(repoRoot, 'cache', 'fixtures'),
        },
      },
      (err, stdout, stderr) => resolve({status: err ? ((err as {code?: number}).code ?? 1) : 0, stdout, stderr}),
    );
  });
}

const mirrorLine =
  /^quickstart: Alpine's mirror cannot be reached \(https:\/\/dl-cdn\.alpinelinux\.org\/alpine\/v3\.21\/main\/x86_64\/APKINDEX\.tar\.gz: [A-Z_]+\); building the offline test image instead$/;

/** The lines the script itself says (everything else is the tools' own output). */
const said = (r: Run) => r.stderr.split('\n').filter((l) => l.startsWith('quickstart:'));

function expectNoStackTrace(r: Run): void {
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr).not.toMatch(/\b(ENOENT|EEXIST)\b/);
}

beforeAll(async () => {
  top = mkdtempSync(join(tmpdir(), 'psy-quickstart-'));
  clone = join(top, 'psy');
  await new Promise<void>((resolve, reject) => execFile('git', ['clone', '--quiet', repoRoot, clone], (err) => (err ? reject(err) : resolve())));
});
afterAll(() => {
  if (top) rmSync(top, {recursive: true, force: true});
});

describe('scripts/quickstart.sh --no-boot on a fresh clone', () => {
  it('with nothing beside the clone: one line for the mirror, one for what the offline image lacks, exit 1', async () => {
    const r = await quickstart();
    expect(r.status).toBe(1);
    expectNoStackTrace(r);
    const lines = said(r);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(mirrorLine);
    expect(lines[1]).toBe(
      "quickstart: the offline image needs Alpine's minirootfs: ../shared/testdata/alpine/minirootfs/alpine-minirootfs-3.20.3-x86_64.tar.gz is not there " +
        'and https://dl-cdn.alpinelinux.org/alpine/v3.20/releases/x86_64/alpine-minirootfs-3.20.3-x86_64.tar.gz cannot be downloaded ' +
        `(${/\(([A-Z_]+)\)/.exec(lines[1]!)?.[1]}); put ../shared beside this clone, or that file at cache/downloads/alpine-minirootfs-3.20.3-x86_64.tar.gz`,
    );
    expect(existsSync(join(clone, 'cache', 'offline-image'))).toBe(false);
  }, 900_000);

  describe.skipIf(!haveAlpineTestData())('with ../shared beside the clone', () => {
    const image = () => join(clone, 'cache', 'offline-image', 'cache', 'out', 'x86_64', 'psyopsOS.x86_64-uefi.generic.img');

    it('builds the offline image after one line about the mirror, exit 0', async () => {
      symlinkSync(sharedDir, join(top, 'shared'));
      const r = await quickstart();
      expect(r.stderr + r.stdout).not.toBe('');
      expect(r.status, r.stderr).toBe(0);
      expectNoStackTrace(r);
      expect(said(r)).toHaveLength(1);
      expect(said(r)[0]).toMatch(mirrorLine);
      // a GPT disk image: the header's signature at LBA 1
      const fd = openSync(image(), 'r');
      const sig = Buffer.alloc(8);
      readSync(fd, sig, 0, 8, 512);
      closeSync(fd);
      expect(sig.toString('latin1')).toBe('EFI PART');
    }, 900_000);

    it('run again, reuses everything: nothing installed, built or rebuilt', async () => {
      const before = statSync(image());
      const r = await quickstart();
      expect(r.status, r.stderr).toBe(0);
      expectNoStackTrace(r);
      expect(said(r)).toHaveLength(1);
      expect(r.stdout).toContain('Debian tools: all installed');
      expect(r.stdout).toContain('psy: up to date');
      expect(r.stdout).toContain('alpine/packages.lock.json: unchanged');
      expect(r.stdout).toMatch(/no work to do/);
      expect(r.stdout).not.toContain('npm run build');
      const after = statSync(image());
      expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    }, 900_000);
  });
});

// Without ../shared the offline image downloads Alpine's files; what it accepts is pinned.
describe.skipIf(!haveAlpineTestData())('the offline image sources it downloads', () => {
  it('the pinned minirootfs sha512 is that of the official tarball', () => {
    expect(minirootfsRelease.file).toBe(basename(MINIROOTFS));
    expect(createHash('sha512').update(readFileSync(MINIROOTFS)).digest('hex')).toBe(minirootfsRelease.sha512);
  });

  it("mkinitfs's source archive: accepted when its files are 3.13.0's, refused when one differs", () => {
    // laid out as the release tag's archive: one top folder, the init before its @VERSION@ substitution
    const init = readFileSync(join(MKINITFS_DIR, 'initramfs-init'), 'utf8');
    expect(init).toContain('VERSION=3.13.0\n');
    const features = readdirSync(join(MKINITFS_DIR, 'features.d')).sort();
    const archive = (change?: string) => {
      const top = 'mkinitfs-3.13.0-5e9c5e6563223ab6c51a5b23e88d298795b4b9e4/';
      const entries: TarWriteEntry[] = [
        {path: top, type: 'directory', mode: 0o755, mtime: 0},
        {path: `${top}initramfs-init.in`, type: 'file', mode: 0o644, mtime: 0, data: Buffer.from(init.replace('VERSION=3.13.0\n', 'VERSION=@VERSION@\n'))},
        {path: `${top}features.d/`, type: 'directory', mode: 0o755, mtime: 0},
        ...features.map((f): TarWriteEntry => {
          const data = readFileSync(join(MKINITFS_DIR, 'features.d', f));
          return {
            path: `${top}features.d/${f}`,
            type: 'file',
            mode: 0o644,
            mtime: 0,
            data: f === change ? Buffer.concat([data, Buffer.from('extra\n')]) : data,
          };
        }),
      ];
      return gzipSync(writeTar(entries));
    };
    const got = mkinitfsFromArchive(archive(), 'mkinitfs-3.13.0.tar.gz');
    expect(got.init.toString('utf8')).toBe(init);
    expect([...got.features.keys()].sort()).toEqual(features);
    expect(() => mkinitfsFromArchive(archive('virtio.modules'), 'mkinitfs-3.13.0.tar.gz')).toThrow(
      "mkinitfs-3.13.0.tar.gz: initramfs-init or features.d is not mkinitfs 3.13.0's; refusing it",
    );
  });
});
