import {execFileSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeAll, describe, expect, it} from 'vitest';
import {readApk, type ApkPackage} from '../src/apk/apk-package.js';
import {installPackages} from '../src/apk/installer.js';
import {loadKeyring} from '../src/apk/keys.js';
import type {ManifestEntry} from '../src/apk/manifest.js';
import {buildFixtureRepository, MINIROOTFS_INSTALL_ORDER, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'psy-apk-install-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true});
});

interface Node {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  content: string;
}

function walk(root: string, rel = '', out = new Map<string, Node>()): Map<string, Node> {
  for (const name of readdirSync(join(root, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const abs = join(root, r);
    const st = lstatSync(abs);
    const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
    const content = type === 'file' ? createHash('sha256').update(readFileSync(abs)).digest('hex') : type === 'symlink' ? readlinkSync(abs) : '';
    out.set(r, {type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, content});
    if (type === 'directory') walk(root, r, out);
  }
  return out;
}

/** Install order for the minirootfs set: dependencies before dependents, as the resolver orders. */
function loadFixturePackages(fx: FixtureRepository, names: readonly string[]): ApkPackage[] {
  const keyring = loadKeyring(fx.keysDir);
  const files = readdirSync(fx.archDir).filter((f) => f.endsWith('.apk'));
  return names.map((n) => {
    const f = files.find((x) => x.startsWith(`${n}-`) && /^[0-9]/.test(x.slice(n.length + 1)))!;
    return readApk(readFileSync(join(fx.archDir, f)), f, {keyring});
  });
}

describe.skipIf(!haveAlpineTestData())('installer: round trip against the official minirootfs', () => {
  let fx: FixtureRepository;
  beforeAll(async () => {
    fx = await buildFixtureRepository({kernel: false});
  });

  it('installs the re-packed minirootfs set to the same tree as the official tarball', () => {
    const official = tempDir();
    execFileSync('tar', ['-xzf', fx.minirootfsTarball, '-C', official, '--numeric-owner']);
    const root = join(tempDir(), 'root');
    const order = [...MINIROOTFS_INSTALL_ORDER, 'alpine-base'];
    const pkgs = loadFixturePackages(fx, order);
    const officialRepos = readFileSync(join(official, 'etc/apk/repositories'), 'utf8').split('\n').filter(Boolean);
    const log: string[] = [];
    const result = installPackages({
      root,
      packages: pkgs,
      world: fx.minirootfsWorld,
      repositories: officialRepos,
      keys: [[fx.keyName, readFileSync(join(fx.keysDir, fx.keyName))]],
      arch: 'x86_64',
      sourceDateEpoch: 1725622440,
      log: (l) => log.push(l),
    });
    const byPath = new Map<string, ManifestEntry>(result.manifest.entries.map((e) => [e.path, e]));
    const want = walk(official);
    const got = walk(root);

    // Differences, each explained:
    const explained = new Map<string, string>([
      // Q1 identities of re-packed packages differ from Alpine's (new control sections, new key)
      ['lib/apk/db/installed', 'compared record by record below'],
      ['lib/apk/db/scripts.tar', 'entry names carry the new Q1 identities; compared below'],
      ['lib/apk/db/triggers', 'carries the new Q1 identity; compared below'],
      // our signing key is installed beside Alpine's keys
      [`etc/apk/keys/${fx.keyName}`, 'the repository key from the configuration is installed'],
      // Alpine's tarball leaves out dev/* (genrootfs --exclude); alpine-baselayout owns these dirs
      ['dev/pts', 'alpine-baselayout owns it; Alpine excludes dev/* from the tarball'],
      ['dev/shm', 'alpine-baselayout owns it; Alpine excludes dev/* from the tarball'],
    ]);
    const problems: string[] = [];
    for (const [p, w] of want) {
      if (explained.has(p)) continue;
      const g = got.get(p);
      const m = byPath.get(p);
      if (!g || !m) {
        problems.push(`missing ${p}`);
        continue;
      }
      if (g.type !== w.type) problems.push(`${p}: type ${g.type} != ${w.type}`);
      if (g.content !== w.content) problems.push(`${p}: content differs`);
      if (w.type !== 'symlink' && m.mode !== w.mode) problems.push(`${p}: mode ${m.mode.toString(8)} != ${w.mode.toString(8)}`);
      if (m.uid !== w.uid || m.gid !== w.gid) problems.push(`${p}: owner ${m.uid}:${m.gid} != ${w.uid}:${w.gid}`);
    }
    for (const p of got.keys()) if (!want.has(p) && !explained.has(p)) problems.push(`extra ${p}`);
    expect(problems).toEqual([]);
    // manifest lists exactly what is on disk
    expect([...got.keys()].filter((p) => !byPath.has(p))).toEqual([]);

    // installed database: same packages, versions and file lists
    const records = (text: string) =>
      text
        .split('\n\n')
        .filter((b) => b.trim())
        .map((b) => {
          const lines = b.split('\n');
          const name = lines.find((l) => l.startsWith('P:'))!;
          const files = lines.filter((l) => /^[FRMa]:/.test(l));
          const version = lines.find((l) => l.startsWith('V:'))!;
          const deps = lines.filter((l) => /^[Dpir]:/.test(l));
          return `${name} ${version}\n${deps.join('\n')}\n${files.join('\n')}`;
        })
        .sort();
    const gotDb = records(readFileSync(join(root, 'lib/apk/db/installed'), 'utf8'));
    const wantDb = records(readFileSync(join(official, 'lib/apk/db/installed'), 'utf8'));
    // alpine-base is installed here (Alpine copies its etc/ files without installing it)
    // apk 2.14 wrote no M: line for proc although the directory is 0555 (as in the
    // package); psy records the package's mode.
    const fixProc = (r: string) => r.replace('F:proc\nM:0:0:555\n', 'F:proc\n');
    expect(gotDb.filter((r) => !r.startsWith('P:alpine-base V:')).map(fixProc)).toEqual(wantDb);
    expect(gotDb.some((r) => r.includes('F:proc\nM:0:0:555\n'))).toBe(true);
    // Z: checksums equal the official ones except etc/shadow (edited after install by genrootfs)
    const zOf = (text: string) => {
      const out = new Map<string, string>();
      for (const block of text.split('\n\n')) {
        if (block.includes('P:alpine-base\n')) continue;
        let dir = '';
        let file = '';
        for (const l of block.split('\n')) {
          if (l.startsWith('F:')) dir = l.slice(2);
          else if (l.startsWith('R:')) file = `${dir}/${l.slice(2)}`;
          else if (l.startsWith('Z:')) out.set(file, l.slice(2));
        }
      }
      return out;
    };
    const gz = zOf(readFileSync(join(root, 'lib/apk/db/installed'), 'utf8'));
    const wz = zOf(readFileSync(join(official, 'lib/apk/db/installed'), 'utf8'));
    expect(gz.size).toBe(wz.size);
    expect([...gz].filter(([p, z]) => wz.get(p) !== z).map(([p]) => p)).toEqual(['etc/shadow']);

    // scripts.tar and triggers: same content modulo the identities
    const scriptNames = (dir: string) =>
      execFileSync('tar', ['-tf', join(dir, 'lib/apk/db/scripts.tar')], {encoding: 'utf8'})
        .replace(/\.Q1[^.]+=\./g, '.')
        .split('\n')
        .filter(Boolean)
        .sort();
    expect(scriptNames(root)).toEqual(scriptNames(official));
    const trig = (dir: string) => readFileSync(join(dir, 'lib/apk/db/triggers'), 'utf8').replace(/^Q1\S+ /gm, '');
    expect(trig(root)).toBe(trig(official));

    // skipped scripts are reported, with what was reproduced instead
    expect(log).toContain('skipped alpine-baselayout.pre-install (reproduced: group shadow (gid 42))');
    expect(result.skippedScripts.map((s) => `${s.package}.${s.script}`)).toEqual(
      expect.arrayContaining(['busybox.post-install', 'busybox.trigger', 'alpine-baselayout.post-install']),
    );
    expect(result.busyboxLinks).toBe(303); // 304 applets, bin/sh comes from busybox-binsh

    // same packages, same result: manifest and database byte for byte
    const again = join(tempDir(), 'root');
    const second = installPackages({
      root: again,
      packages: loadFixturePackages(fx, order),
      world: fx.minirootfsWorld,
      repositories: officialRepos,
      keys: [[fx.keyName, readFileSync(join(fx.keysDir, fx.keyName))]],
      arch: 'x86_64',
      sourceDateEpoch: 1725622440,
    });
    expect(JSON.stringify(second.manifest)).toBe(JSON.stringify(result.manifest));
    for (const f of ['installed', 'scripts.tar', 'triggers']) {
      expect(readFileSync(join(again, 'lib/apk/db', f)).equals(readFileSync(join(root, 'lib/apk/db', f)))).toBe(true);
    }
  });
});

describe.skipIf(!haveAlpineTestData())('installer: a real Alpine package with scripts', () => {
  it('installs the aarch64 alpine-baselayout 3.2.0 with its modes and lists the scripts it did not run', () => {
    const keyring = loadKeyring(join(alpineTestData, 'keys'));
    const pkg = readApk(readFileSync(join(alpineTestData, 'v3.16/main/aarch64/alpine-baselayout-3.2.0-r23.apk')), 'baselayout', {keyring});
    const root = join(tempDir(), 'root');
    const log: string[] = [];
    const r = installPackages({
      root,
      packages: [pkg],
      world: ['alpine-baselayout'],
      repositories: [],
      keys: [],
      arch: 'aarch64',
      sourceDateEpoch: 1,
      log: (l) => log.push(l),
    });
    const m = new Map(r.manifest.entries.map((e) => [e.path, e]));
    expect(m.get('tmp')).toMatchObject({type: 'directory', mode: 0o1777});
    expect(m.get('var/empty')).toMatchObject({type: 'directory', mode: 0o555});
    expect(m.get('root')).toMatchObject({type: 'directory', mode: 0o700});
    expect(m.get('var/run')).toMatchObject({type: 'symlink', target: '/run'});
    expect(readlinkSync(join(root, 'var/run'))).toBe('/run');
    // on disk the owner can always write (modes are in the manifest)
    expect(lstatSync(join(root, 'var/empty')).mode & 0o7777).toBe(0o755);
    expect(log).toEqual([
      'installed alpine-baselayout-3.2.0-r23',
      'skipped alpine-baselayout.pre-install (reproduced: group shadow (gid 42))',
      'skipped alpine-baselayout.post-install (reproduced: etc/shadow owned root:shadow, mode 0640)',
    ]);
    // scripts are kept in scripts.tar for apk on the node, upgrade ones included
    const names = execFileSync('tar', ['-tf', join(root, 'lib/apk/db/scripts.tar')], {encoding: 'utf8'})
      .split('\n')
      .filter(Boolean);
    expect(names).toEqual(['pre-install', 'post-install', 'pre-upgrade', 'post-upgrade'].map((s) => `alpine-baselayout-3.2.0-r23.${pkg.checksum}.${s}`));
    const db = readFileSync(join(root, 'lib/apk/db/installed'), 'utf8');
    expect(db).toContain(`C:${pkg.checksum}\nP:alpine-baselayout\nV:3.2.0-r23\nA:aarch64\nS:11012\n`);
    expect(db).toContain('F:tmp\nM:0:0:1777\n');
  });
});
