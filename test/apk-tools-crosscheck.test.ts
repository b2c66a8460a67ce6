/**
 * Cross-checks against the real apk-tools 2.14.4 binary shipped in the official Alpine
 * minirootfs, run on this host through its own musl dynamic loader: it must accept our
 * signed packages and index, install the same tree and write the same database as psy,
 * and work on a root that psy installed.
 */
import {execFileSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {readApkIndex} from '../src/apk/apkindex.js';
import {installPackages, type InstallResult} from '../src/apk/installer.js';
import {generateSigningKey, loadKeyring} from '../src/apk/keys.js';
import {buildRepository} from '../src/apk/package-builder.js';
import {resolve} from '../src/apk/resolver.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

const isRoot = process.getuid?.() === 0;

describe.skipIf(!haveAlpineTestData())('real apk-tools accepts what psy writes', () => {
  let fx: FixtureRepository;
  let work: string;
  let runner: string;
  const apk = (...args: string[]) =>
    execFileSync(join(runner, 'lib/ld-musl-x86_64.so.1'), ['--library-path', `${runner}/lib:${runner}/usr/lib`, join(runner, 'sbin/apk'), ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  let ours: string;
  let installed: InstallResult;

  beforeAll(async () => {
    fx = await buildFixtureRepository({kernel: false});
    work = mkdtempSync(join(tmpdir(), 'psy-apk-crosscheck-'));
    runner = join(work, 'runner');
    mkdirSync(runner);
    execFileSync('tar', ['-xzf', fx.minirootfsTarball, '-C', runner, './lib', './usr/lib', './sbin/apk']);
    // psy installs the minirootfs world, resolved by psy, from the same repository
    const keyring = loadKeyring(fx.keysDir);
    const index = readApkIndex(readFileSync(join(fx.archDir, 'APKINDEX.tar.gz')), 'fixture', {keyring});
    const order = resolve({world: fx.minirootfsWorld, arch: 'x86_64', repositories: [{name: fx.repoDir, records: index.records}]});
    const packages = order.map((r) =>
      readApk(readFileSync(join(fx.archDir, `${r.record.name}-${r.record.version}.apk`)), r.record.name, {keyring, expectedChecksum: r.record.checksum}),
    );
    ours = join(work, 'ours');
    installed = installPackages({
      root: ours,
      packages,
      world: fx.minirootfsWorld,
      repositories: [fx.repoDir],
      keys: [[fx.keyName, readFileSync(join(fx.keysDir, fx.keyName))]],
      arch: 'x86_64',
      sourceDateEpoch: 1725622440,
    });
  });
  afterAll(() => rmSync(work, {recursive: true, force: true}));

  it('runs the real apk', () => {
    expect(apk('--version')).toMatch(/^apk-tools 2\.14\.4, compiled for x86_64\./);
  });

  it('apk verify accepts every package psy built and signed', () => {
    const probe = join(work, 'probe');
    mkdirSync(join(probe, 'etc/apk/keys'), {recursive: true});
    cpSync(join(fx.keysDir, fx.keyName), join(probe, 'etc/apk/keys', fx.keyName));
    const apks = readdirSync(fx.archDir).filter((f) => f.endsWith('.apk')).map((f) => join(fx.archDir, f));
    const out = apk('--root', probe, 'verify', ...apks);
    expect(out.trim().split('\n')).toEqual(apks.map((p) => `${p}: 0 - OK`));
  });

  it('apk index writes the same APKINDEX text as psy', () => {
    const out = join(work, 'apk-index.tar.gz');
    const apks = readdirSync(fx.archDir).filter((f) => f.endsWith('.apk')).map((f) => join(fx.archDir, f));
    apk('--root', join(work, 'probe'), 'index', '-o', out, '-d', 'v3.20.3-fixture', ...apks);
    const theirs = join(work, 'their-index');
    const mine = join(work, 'my-index');
    mkdirSync(theirs);
    mkdirSync(mine);
    execFileSync('tar', ['-xzf', out, '-C', theirs]);
    execFileSync('tar', ['-xzf', join(fx.archDir, 'APKINDEX.tar.gz'), '-C', mine]);
    expect(readFileSync(join(mine, 'APKINDEX'), 'utf8')).toBe(readFileSync(join(theirs, 'APKINDEX'), 'utf8'));
  });

  it.skipIf(!isRoot)('apk add --initdb installs the same tree and the same database as psy', () => {
    const theirs = join(work, 'theirs');
    mkdirSync(join(theirs, 'etc/apk/keys'), {recursive: true});
    cpSync(join(fx.keysDir, fx.keyName), join(theirs, 'etc/apk/keys', fx.keyName));
    apk('--root', theirs, 'add', '--initdb', '--no-scripts', '--no-cache', '--repository', fx.repoDir, ...fx.minirootfsWorld);

    // the database apk writes is byte for byte the one psy writes
    for (const f of ['installed', 'scripts.tar', 'triggers']) {
      expect(readFileSync(join(ours, 'lib/apk/db', f)).equals(readFileSync(join(theirs, 'lib/apk/db', f))), f).toBe(true);
    }
    expect(readFileSync(join(ours, 'etc/apk/world'), 'utf8')).toBe(readFileSync(join(theirs, 'etc/apk/world'), 'utf8'));

    // the trees: same paths, types, contents, link targets; psy's modes and owners are
    // in its manifest (the tree on disk is written unprivileged)
    const manifest = new Map(installed.manifest.entries.map((e) => [e.path, e]));
    const theirPaths = walk(theirs);
    const problems: string[] = [];
    for (const [p, t] of theirPaths) {
      const m = manifest.get(p);
      if (!m) {
        problems.push(`psy lacks ${p}`);
        continue;
      }
      const type = m.type === 'hardlink' ? 'file' : m.type;
      if (type !== t.type) problems.push(`${p}: ${type} != ${t.type}`);
      if (t.type !== 'symlink' && m.mode !== t.mode) problems.push(`${p}: mode ${m.mode.toString(8)} != ${t.mode.toString(8)}`);
      if (m.uid !== t.uid || m.gid !== t.gid) problems.push(`${p}: owner ${m.uid}:${m.gid} != ${t.uid}:${t.gid}`);
      if (t.type === 'char' && `${m.major},${m.minor}` !== t.content) problems.push(`${p}: device ${m.major},${m.minor} != ${t.content}`);
      if ((t.type === 'file' || t.type === 'symlink') && content(join(ours, p), t.type) !== t.content) problems.push(`${p}: content differs`);
    }
    expect(problems).toEqual([]);
    // What psy has beyond apk --no-scripts: the busybox links the busybox scripts would
    // make, and etc/apk/repositories from the configuration (apk got --repository).
    const extra = [...manifest.keys()].filter((p) => !theirPaths.has(p));
    const links = extra.filter((p) => manifest.get(p)!.type === 'symlink' && manifest.get(p)!.target === '/bin/busybox');
    expect(links.length).toBe(installed.busyboxLinks);
    expect(extra.filter((p) => !links.includes(p))).toEqual(['etc/apk/repositories']);
  });

  it('resolves the real v3.16 index to the same packages as apk add --simulate', () => {
    const sim = join(work, 'sim');
    mkdirSync(join(sim, 'etc/apk/keys'), {recursive: true});
    for (const k of readdirSync(join(alpineTestData, 'keys'))) cpSync(join(alpineTestData, 'keys', k), join(sim, 'etc/apk/keys', k));
    apk('--root', sim, 'add', '--initdb', '--no-cache');
    const repo = join(alpineTestData, 'v3.16/main');
    const index = readApkIndex(readFileSync(join(repo, 'x86_64/APKINDEX.tar.gz')), 'v3.16', {keyring: loadKeyring(join(alpineTestData, 'keys'))});
    const worlds = [
      ['alpine-base', 'openssh'],
      ['strace'],
      ['busybox', 'curl'],
      ['python3'],
      ['vim'],
      ['alpine-base', 'vim', 'gvim'],
      ['busybox', 'vim', 'gvim'],
      ['linux-lts'],
      ['busybox', 'curl', 'git', 'openssh', 'e2fsprogs', 'util-linux', 'grub-efi', 'linux-lts', 'mkinitfs'],
      ['curl'], // refused by both: /bin/sh is virtual and nothing provides it with a priority
      ['openssh-client-default', 'openssh-client-krb5'], // refused by both: conflict
    ];
    for (const world of worlds) {
      let theirs: string[];
      try {
        const out = apk('--root', sim, 'add', '--simulate', '--no-cache', '--repository', repo, ...world);
        theirs = [...out.matchAll(/Installing (\S+) \((\S+)\)/g)].map((m) => `${m[1]}-${m[2]}`).sort();
      } catch {
        theirs = ['refused'];
      }
      let ours: string[];
      try {
        ours = resolve({world, arch: 'x86_64', repositories: [{name: repo, records: index.records}]})
          .map((p) => `${p.record.name}-${p.record.version}`)
          .sort();
      } catch {
        ours = ['refused'];
      }
      expect(ours, world.join(' ')).toEqual(theirs);
    }
  });

  it.skipIf(!isRoot)('apk installs a package psy built from a declaration (SHA-1 and SHA-256 signed)', () => {
    const project = join(work, 'project');
    const decl = join(project, 'alpine/packages/psy-hello');
    mkdirSync(join(decl, 'files/usr/bin'), {recursive: true});
    mkdirSync(join(decl, 'scripts'), {recursive: true});
    writeFileSync(join(decl, 'apk.json'), JSON.stringify({version: '1.0-r0', paths: {'usr/bin/psy-hello': {mode: '4711'}}, dirs: ['var/lib/psy-hello'], symlinks: {'usr/bin/hi': 'psy-hello'}}));
    writeFileSync(join(decl, 'files/usr/bin/psy-hello'), '#!/bin/sh\necho hello\n');
    writeFileSync(join(decl, 'scripts/post-install'), '#!/bin/sh\nexit 0\n');
    for (const algorithm of ['RSA', 'RSA256'] as const) {
      const key = generateSigningKey(`psy-${algorithm.toLowerCase()}`, 0x66000000);
      const repo = join(work, `repo-${algorithm}`);
      buildRepository({packagesDir: join(project, 'alpine/packages'), repoDir: repo, arch: 'x86_64', key, sourceDateEpoch: 1700000000, algorithm});
      const root = join(work, `declared-${algorithm}`);
      mkdirSync(join(root, 'etc/apk/keys'), {recursive: true});
      writeFileSync(join(root, 'etc/apk/keys', key.name), key.publicKeyPem);
      expect(apk('--root', root, 'verify', join(repo, 'x86_64/psy-hello-1.0-r0.apk'))).toContain(': 0 - OK');
      apk('--root', root, 'add', '--initdb', '--no-scripts', '--no-cache', '--repository', repo, 'psy-hello');
      expect(lstatSync(join(root, 'usr/bin/psy-hello')).mode & 0o7777).toBe(0o4711);
      expect(readlinkSync(join(root, 'usr/bin/hi'))).toBe('psy-hello');
      expect(lstatSync(join(root, 'var/lib/psy-hello')).isDirectory()).toBe(true);
      expect(apk('--root', root, 'info', '-e', 'psy-hello').trim()).toBe('psy-hello');
    }
  });

  it('apk works on the root psy installed: info, audit, del', () => {
    expect(apk('--root', ours, 'info').trim().split('\n').sort()).toEqual(installed.installed.map((p) => p.record.name).sort());
    // audit lists what no package owns: the busybox links, nothing modified
    const audit = apk('--root', ours, 'audit', '--full').trim().split('\n');
    expect(audit.length).toBe(installed.busyboxLinks);
    expect(audit.every((l) => l.startsWith('A '))).toBe(true);
    const copy = join(work, 'ours-del');
    cpSync(ours, copy, {recursive: true, verbatimSymlinks: true});
    const del = apk('--root', copy, 'del', '--no-scripts', 'libc-utils');
    expect(del).toContain('Purging musl-utils (1.2.5-r0)');
    expect(() => lstatSync(join(copy, 'usr/bin/getent'))).toThrow();
    expect(readFileSync(join(copy, 'etc/apk/world'), 'utf8')).not.toContain('libc-utils');
  });
});

interface Node {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  content: string;
}

function content(abs: string, type: string): string {
  return type === 'symlink' ? readlinkSync(abs) : createHash('sha256').update(readFileSync(abs)).digest('hex');
}

function walk(root: string, rel = '', out = new Map<string, Node>()): Map<string, Node> {
  if (rel === '') {
    const st = lstatSync(root);
    out.set('', {type: 'directory', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, content: ''});
  }
  for (const name of readdirSync(join(root, rel)).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const abs = join(root, r);
    const st = lstatSync(abs);
    const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isCharacterDevice() ? 'char' : 'other';
    const c = type === 'file' || type === 'symlink' ? content(abs, type) : type === 'char' ? `${Math.floor(st.rdev / 256)},${st.rdev % 256}` : '';
    out.set(r, {type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, content: c});
    if (type === 'directory') walk(root, r, out);
  }
  return out;
}
