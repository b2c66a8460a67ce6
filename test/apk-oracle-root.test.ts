/**
 * The real apk-tools (built from source by test/helpers/apk-tools.ts) on roots psy
 * installs: apk reads psy's installed database (info, audit, fix, add, del), and
 * `apk add --initdb --no-scripts` of the same world from the same repositories installs
 * the same tree and writes the same database as psy.
 */
import {createHash} from 'node:crypto';
import {cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {readApk, type ApkPackage} from '../src/apk/apk-package.js';
import {readApkIndex} from '../src/apk/apkindex.js';
import {buildApk} from '../src/apk/apk-writer.js';
import {installPackages, type InstallResult} from '../src/apk/installer.js';
import {generateSigningKey} from '../src/apk/keys.js';
import {emptyMeta} from '../src/apk/package-meta.js';
import {buildRepository} from '../src/apk/package-builder.js';
import {indexRepository} from '../src/apk/repository-index.js';
import {resolve, type ResolverRepository} from '../src/apk/resolver.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {apkTools, haveApkTools} from './helpers/apk-tools.js';
import {declareOwnPackages} from './helpers/oracle-packages.js';
import {haveAlpineTestData} from './helpers/shared-data.js';

const isRoot = process.getuid?.() === 0;
const EPOCH = 1700000000;

describe.skipIf(!haveAlpineTestData() || !haveApkTools())('real apk-tools on roots psy installs', () => {
  let fx: FixtureRepository;
  let work: string;
  let ours: string;
  let installed: InstallResult;
  let world: string[];
  let repoDirs: string[];
  const keys: Array<[string, Buffer]> = [];
  const apk = (...args: string[]) => apkTools().run(args);

  beforeAll(async () => {
    fx = await buildFixtureRepository({kernel: false});
    work = mkdtempSync(join(tmpdir(), 'psy-apk-oracle-root-'));
    keys.push([fx.keyName, readFileSync(join(fx.keysDir, fx.keyName))]);
    // psy's own packages (a noarch one, an arch one joining by install_if) ...
    const ownKey = generateSigningKey('psy-own', 0x66000000);
    keys.push([ownKey.name, Buffer.from(ownKey.publicKeyPem)]);
    const ownRepo = join(work, 'own');
    buildRepository({packagesDir: declareOwnPackages(join(work, 'project')), repoDir: ownRepo, arch: 'x86_64', key: ownKey, sourceDateEpoch: EPOCH});
    // ... and one written by buildApk from file entries alone
    const directRepo = join(work, 'direct');
    mkdirSync(join(directRepo, 'x86_64'), {recursive: true});
    const direct = buildApk({
      meta: {...emptyMeta('psy-direct', '0.1-r0'), buildDate: EPOCH, arch: 'x86_64', depends: ['musl']},
      entries: [
        {path: 'opt/psy/deep/file', type: 'file', mode: 0o640, gid: 42, data: Buffer.from('x\n')},
        {path: 'opt/psy/link', type: 'symlink', mode: 0o777, linkTarget: 'deep/file'},
      ],
      key: ownKey,
    });
    writeFileSync(join(directRepo, 'x86_64/psy-direct-0.1-r0.apk'), direct.bytes);
    indexRepository({archDir: join(directRepo, 'x86_64'), key: ownKey, description: 'direct', mtime: EPOCH});

    repoDirs = [ownRepo, directRepo, fx.repoDir];
    world = [...fx.minirootfsWorld, 'psy-hello', 'psy-direct'];
    const repositories: ResolverRepository[] = repoDirs.map((dir) => ({
      name: dir,
      records: readApkIndex(readFileSync(join(dir, 'x86_64/APKINDEX.tar.gz')), dir, {skipSignature: true}).records,
    }));
    const order = resolve({world, arch: 'x86_64', repositories});
    const packages: ApkPackage[] = order.map((r) =>
      readApk(readFileSync(join(r.repository, 'x86_64', `${r.record.name}-${r.record.version}.apk`)), r.record.name, {
        skipSignature: true,
        expectedChecksum: r.record.checksum,
      }),
    );
    ours = join(work, 'ours');
    installed = installPackages({root: ours, packages, world, repositories: repoDirs, keys, arch: 'x86_64', sourceDateEpoch: EPOCH});
  });
  afterAll(() => rmSync(work, {recursive: true, force: true}));

  it('psy installed the noarch package, the install_if one and the directory-less one', () => {
    expect(installed.installed.map((p) => p.record.name)).toEqual(expect.arrayContaining(['psy-hello', 'psy-arch', 'psy-direct']));
  });

  it('apk info -v lists exactly the packages psy installed', () => {
    const listed = apk('--root', ours, 'info', '-v').trim().split('\n').sort();
    expect(listed).toEqual(installed.installed.map((p) => `${p.record.name}-${p.record.version}`).sort());
  });

  it('apk info -L lists for every package the files psy recorded', () => {
    for (const p of installed.installed) {
      const files = [...p.dirs.values()].flatMap((d) => [...d.files.keys()].map((f) => (d.path ? `${d.path}/${f}` : f)));
      const out = apk('--root', ours, 'info', '-L', p.record.name);
      expect(out, p.record.name).toBe(`${p.record.name}-${p.record.version} contains:\n${files.map((f) => f + '\n').join('')}\n`);
    }
  });

  it('apk audit --full finds nothing changed, only the busybox links no package owns', () => {
    const audit = apk('--root', ours, 'audit', '--full').trim().split('\n');
    expect(audit.length).toBe(installed.busyboxLinks);
    expect(audit.every((l) => l.startsWith('A '))).toBe(true);
  });

  it('apk fix --simulate finds every installed package in its repository', () => {
    for (const p of installed.installed) {
      const out = apk('--root', ours, 'fix', '--simulate', '--no-cache', p.record.name);
      expect(out, p.record.name).toContain(`Reinstalling ${p.record.name} (${p.record.version})`);
    }
  });

  it('apk add --simulate has nothing to do for the world, and installs a new package from psy’s repositories', () => {
    const out = apk('--root', ours, 'add', '--simulate', '--no-cache', ...world);
    expect(out).not.toMatch(/Installing|Upgrading|Purging/);
    expect(apk('--root', ours, 'add', '--simulate', '--no-cache', 'psy-hello')).toMatch(/^OK: /m);
  });

  it('apk del --simulate removes a package psy installed with what only it needed', () => {
    const out = apk('--root', ours, 'del', '--simulate', '--no-cache', 'psy-hello');
    expect(out).toContain('Purging psy-hello (1.0-r0)');
    expect(out).toContain('Purging psy-arch (2.1-r3)');
    const lib = apk('--root', ours, 'del', '--simulate', '--no-cache', 'libc-utils');
    expect(lib).toContain('Purging musl-utils');
  });

  it.skipIf(!isRoot)('apk add --initdb --no-scripts installs the same tree and database as psy', () => {
    const theirs = join(work, 'theirs');
    mkdirSync(join(theirs, 'etc/apk/keys'), {recursive: true});
    for (const [name, pem] of keys) writeFileSync(join(theirs, 'etc/apk/keys', name), pem);
    writeFileSync(join(theirs, 'etc/apk/repositories'), repoDirs.map((r) => r + '\n').join(''));
    apk('--root', theirs, 'add', '--initdb', '--no-scripts', '--no-cache', ...world);

    // the installed database field by field (clearer failures), then byte for byte
    const parse = (root: string) => {
      const recs = new Map<string, string[]>();
      for (const block of readFileSync(join(root, 'lib/apk/db/installed'), 'utf8').split('\n\n')) {
        if (!block.trim()) continue;
        const lines = block.split('\n');
        recs.set(lines.find((l) => l.startsWith('P:'))!.slice(2), lines);
      }
      return recs;
    };
    const mine = parse(ours);
    const theirDb = parse(theirs);
    expect([...mine.keys()].sort()).toEqual([...theirDb.keys()].sort());
    for (const [name, lines] of theirDb) expect(mine.get(name), name).toEqual(lines);
    for (const f of ['installed', 'scripts.tar', 'triggers']) {
      expect(readFileSync(join(ours, 'lib/apk/db', f)).equals(readFileSync(join(theirs, 'lib/apk/db', f))), f).toBe(true);
    }
    expect(readFileSync(join(ours, 'etc/apk/world'), 'utf8')).toBe(readFileSync(join(theirs, 'etc/apk/world'), 'utf8'));

    // the trees path by path: type, mode, owner, content, link target; psy's modes and
    // owners are in its manifest (the tree on disk is written unprivileged)
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
    // all psy has beyond apk --no-scripts: the links busybox's scripts would make
    const extra = [...manifest.keys()].filter((p) => !theirPaths.has(p));
    expect(extra.length).toBe(installed.busyboxLinks);
    expect(extra.every((p) => manifest.get(p)!.type === 'symlink' && manifest.get(p)!.target === '/bin/busybox')).toBe(true);

    // apk on its own root agrees with apk on psy's
    expect(apk('--root', theirs, 'info', '-v')).toBe(apk('--root', ours, 'info', '-v'));
  });

  it('apk reinstalls (fix) and deletes packages on a copy of the root psy installed', () => {
    const copy = join(work, 'ours-del');
    cpSync(ours, copy, {recursive: true, verbatimSymlinks: true});
    // fetches each from <repo>/<arch recorded in the installed db>/
    for (const p of ['psy-hello', 'psy-arch', 'psy-direct', 'busybox']) {
      expect(apk('--root', copy, 'fix', '--no-scripts', '--no-cache', p), p).toContain(`Reinstalling ${p} `);
    }
    expect(apk('--root', copy, 'audit', '--full').trim().split('\n').length).toBe(installed.busyboxLinks);
    apk('--root', copy, 'del', '--no-scripts', '--no-cache', 'psy-hello');
    expect(() => lstatSync(join(copy, 'usr/bin/psy-hello'))).toThrow();
    expect(readFileSync(join(copy, 'etc/apk/world'), 'utf8')).not.toContain('psy-hello');
    // install_if went with it
    expect(apkTools().tryRun(['--root', copy, 'info', '-e', 'psy-arch']).status).toBe(1);
    expect(apk('--root', copy, 'info', '-e', 'psy-direct').trim()).toBe('psy-direct');
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
