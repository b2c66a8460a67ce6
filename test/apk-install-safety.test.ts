import {createHash} from 'node:crypto';
import {existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, describe, expect, it} from 'vitest';
import {readApk, type ApkPackage} from '../src/apk/apk-package.js';
import {buildApk, type ApkDataEntry} from '../src/apk/apk-writer.js';
import {gzipMember} from '../src/apk/gzip-members.js';
import {installPackages, type InstallOptions} from '../src/apk/installer.js';
import {generateSigningKey, keyringFromPem} from '../src/apk/keys.js';
import {emptyMeta, formatPkginfo, type PackageMeta} from '../src/apk/package-meta.js';
import {signatureMember} from '../src/apk/signature.js';
import {writeTar, type TarWriteEntry} from '../src/tar/index.js';

const key = generateSigningKey('test', 0x65000000, 2048);
const keyring = keyringFromPem([[key.name, key.publicKeyPem]]);
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'psy-apk-safety-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true});
});

const meta = (name: string, fields: Partial<PackageMeta> = {}): PackageMeta => ({
  ...emptyMeta(name, '1.0-r0'),
  arch: 'x86_64',
  buildDate: 1700000000,
  ...fields,
});

/** A correctly signed package whose data tar holds exactly these entries, unchecked. */
function craft(name: string, entries: TarWriteEntry[]): ApkPackage {
  const dataGz = gzipMember(writeTar(entries));
  const m = {...meta(name), datahash: createHash('sha256').update(dataGz).digest('hex')};
  const control = gzipMember(writeTar([{path: '.PKGINFO', type: 'file', mode: 0o644, mtime: 1, data: Buffer.from(formatPkginfo(m))}], {endOfArchive: false}));
  const bytes = Buffer.concat([signatureMember(control, key, 1), control, dataGz]);
  return readApk(bytes, `${name}.apk`, {keyring});
}

function pkg(name: string, entries: ApkDataEntry[], fields: Partial<PackageMeta> = {}): ApkPackage {
  const built = buildApk({meta: meta(name, fields), entries, key});
  return readApk(built.bytes, `${name}.apk`, {keyring});
}

function install(root: string, packages: ApkPackage[], extra: Partial<InstallOptions> = {}) {
  return installPackages({root, packages, world: packages.map((p) => p.meta.name), repositories: [], keys: [], arch: 'x86_64', sourceDateEpoch: 1, ...extra});
}

const file = (path: string, data = 'x', mode = 0o644): TarWriteEntry => ({path, type: 'file', mode, mtime: 1, data: Buffer.from(data)});

describe('installer refuses archives that reach outside the root', () => {
  it.each([
    ['a .. path', [file('../escaped')], "path '../escaped' escapes the root"],
    ['a nested .. path', [file('usr/../../escaped')], "path 'usr/../../escaped' escapes the root"],
    ['an absolute path', [file('/escaped')], "absolute path '/escaped' refused"],
    ['a PAX path with ..', [{...file('innocent'), pax: [['path', 'a/../../../escaped']]}], 'escapes the root'],
    [
      'a file through a symlink that leads out',
      [{path: 'link', type: 'symlink', mode: 0o777, mtime: 1, linkTarget: '../../..'}, file('link/escaped')],
      "'link' is a symlink to '../../..', which leads out of the root",
    ],
    [
      'a hardlink to a path outside',
      [{path: 'hl', type: 'hardlink', mode: 0o644, mtime: 1, linkTarget: '../outside/secret'}],
      "path '../outside/secret' escapes the root",
    ],
    [
      'a device node',
      [
        {path: 'dev/', type: 'directory', mode: 0o755, mtime: 1},
        {path: 'dev/sda', type: 'block', mode: 0o660, mtime: 1, devMajor: 8, devMinor: 0},
      ],
      "device file 'dev/sda' is not allowed",
    ],
  ] as const)('%s', (_what, entries, message) => {
    const base = tempDir();
    const root = join(base, 'a', 'root');
    mkdirSync(join(base, 'outside'), {recursive: true});
    writeFileSync(join(base, 'outside', 'secret'), 'secret');
    const p = craft('evil', entries as unknown as TarWriteEntry[]);
    expect(() => install(root, [p])).toThrow(message);
    // nothing was written outside the root
    expect(readdirSync(base).sort()).toEqual(['a', 'outside']);
    expect(readdirSync(join(base, 'a'))).toEqual(['root']);
    expect(readdirSync(join(base, 'outside'))).toEqual(['secret']);
    expect(existsSync(join(base, 'escaped'))).toBe(false);
  });

  it('follows an absolute symlink inside the root, never on the host', () => {
    const base = tempDir();
    const root = join(base, 'root');
    const outside = join(base, 'etc');
    mkdirSync(outside);
    const p = craft('usrmerge', [
      {path: 'usr/', type: 'directory', mode: 0o755, mtime: 1},
      {path: 'usr/lib/', type: 'directory', mode: 0o755, mtime: 1},
      {path: 'lib', type: 'symlink', mode: 0o777, mtime: 1, linkTarget: '/usr/lib'},
      // a directory entry over a symlink to a directory keeps the symlink
      {path: 'lib/', type: 'directory', mode: 0o755, mtime: 1},
      file('lib/libx.so', 'elf'),
      {path: 'hostetc', type: 'symlink', mode: 0o777, mtime: 1, linkTarget: outside},
      {path: 'hostetc/', type: 'directory', mode: 0o755, mtime: 1},
      file('hostetc/passwd', 'owned'),
    ]);
    install(root, [p]);
    expect(readFileSync(join(root, 'usr/lib/libx.so'), 'utf8')).toBe('elf');
    // the absolute target is taken inside the root: <root>/<base>/etc/passwd
    expect(readFileSync(join(root, outside, 'passwd'), 'utf8')).toBe('owned');
    expect(readdirSync(outside)).toEqual([]);
  });

  it('replaces a symlink with a file without writing through it', () => {
    const base = tempDir();
    writeFileSync(join(base, 'target'), 'host');
    const a = craft('a', [
      {path: 'etc/', type: 'directory', mode: 0o755, mtime: 1},
      {path: 'etc/conf', type: 'symlink', mode: 0o777, mtime: 1, linkTarget: join(base, 'target')},
    ]);
    const b = pkg('b', [{path: 'etc/conf', type: 'file', mode: 0o644, data: Buffer.from('pkg')}], {origin: 'a'});
    install(join(base, 'root'), [a, b]);
    expect(readFileSync(join(base, 'target'), 'utf8')).toBe('host');
    expect(lstatSync(join(base, 'root/etc/conf')).isFile()).toBe(true);
    expect(readFileSync(join(base, 'root/etc/conf'), 'utf8')).toBe('pkg');
  });

  it('follows a directory symlink as it is after another package replaced it', () => {
    const base = tempDir();
    const a = craft('a', [
      {path: 'data1/', type: 'directory', mode: 0o755, mtime: 1},
      {path: 'data2/', type: 'directory', mode: 0o755, mtime: 1},
      {path: 'cur', type: 'symlink', mode: 0o777, mtime: 1, linkTarget: 'data1'},
      {path: 'cur/', type: 'directory', mode: 0o755, mtime: 1},
      file('cur/one'),
    ]);
    const b = craft('b', [
      {path: 'cur', type: 'symlink', mode: 0o777, mtime: 1, linkTarget: 'data2'},
      {path: 'cur/', type: 'directory', mode: 0o755, mtime: 1},
      file('cur/two'),
    ]);
    const bSameOrigin = {...b, meta: {...b.meta, origin: 'a'}};
    install(join(base, 'root'), [a, bSameOrigin]);
    expect(readdirSync(join(base, 'root/data1'))).toEqual(['one']);
    expect(readdirSync(join(base, 'root/data2'))).toEqual(['two']);
  });

  it('refuses a file whose directory has no entry in the package, as apk does', () => {
    const p = craft('nodirent', [{path: 'usr/', type: 'directory', mode: 0o755, mtime: 1}, file('usr/bin/tool')]);
    expect(() => install(join(tempDir(), 'root'), [p])).toThrow(
      "package nodirent-1.0-r0: 'usr/bin/tool' has no entry for its directory 'usr/bin/' in the package (apk refuses it: no dirent in archive)",
    );
    // a file at the top level needs none
    install(join(tempDir(), 'root'), [craft('top', [file('toplevel')])]);
  });

  it('refuses a file whose content does not match its PAX SHA-1', () => {
    const p = craft('liar', [
      {path: 'etc/', type: 'directory', mode: 0o755, mtime: 1},
      {...file('etc/x', 'real'), pax: [['APK-TOOLS.checksum.SHA1', createHash('sha1').update('fake').digest('hex')]]},
    ]);
    expect(() => install(join(tempDir(), 'root'), [p])).toThrow("'etc/x' does not match its recorded SHA-1");
  });

  it('refuses an install root that is not empty', () => {
    const root = tempDir();
    writeFileSync(join(root, 'x'), '');
    expect(() => install(root, [pkg('a', [])])).toThrow(`install root ${root} is not empty`);
  });
});

describe('installer: overwrite rules, links, devices, accounts', () => {
  const conf = (data: string): ApkDataEntry[] => [
    {path: 'etc/', type: 'directory', mode: 0o755},
    {path: 'etc/app.conf', type: 'file', mode: 0o644, data: Buffer.from(data)},
  ];

  it('refuses a directory where an earlier package put a file', () => {
    const a = pkg('a', [
      {path: 'etc/', type: 'directory', mode: 0o755},
      {path: 'etc/x', type: 'file', mode: 0o644, data: Buffer.from('f')},
    ]);
    const b = pkg('b', [
      {path: 'etc/', type: 'directory', mode: 0o755},
      {path: 'etc/x/', type: 'directory', mode: 0o755},
    ]);
    expect(() => install(join(tempDir(), 'root'), [a, b])).toThrow("package b-1.0-r0: directory 'etc/x' would replace a file or link installed before");
  });

  it('refuses a file conflict between unrelated packages, naming both', () => {
    expect(() => install(join(tempDir(), 'root'), [pkg('one', conf('1')), pkg('two', conf('2'))])).toThrow(
      "package two-1.0-r0: 'etc/app.conf' is already installed by one-1.0-r0 (no replaces, different origin)",
    );
  });

  it('lets replaces and same-origin packages overwrite, and identical files coexist', () => {
    for (const fields of [{replaces: ['one']}, {origin: 'one'}]) {
      const root = join(tempDir(), 'root');
      const r = install(root, [pkg('one', conf('1')), pkg('two', conf('2'), fields)]);
      expect(readFileSync(join(root, 'etc/app.conf'), 'utf8')).toBe('2');
      const db = readFileSync(join(root, 'lib/apk/db/installed'), 'utf8');
      // the file moved to the package that overwrote it
      expect(db.split('\n\n')[0]).not.toContain('R:app.conf');
      expect(db.split('\n\n')[1]).toContain('R:app.conf');
      expect(r.installed.length).toBe(2);
    }
    const root = join(tempDir(), 'root');
    install(root, [pkg('one', conf('same')), pkg('two', conf('same'))]);
    expect(readFileSync(join(root, 'etc/app.conf'), 'utf8')).toBe('same');
  });

  it('installs hardlinks as links to the same inode and records modes and owners', () => {
    const root = join(tempDir(), 'root');
    const r = install(root, [
      pkg('tools', [
        {path: 'bin/', type: 'directory', mode: 0o755},
        {path: 'bin/tool', type: 'file', mode: 0o4755, uid: 0, gid: 0, data: Buffer.from('#!/bin/sh\n')},
        {path: 'bin/tool-alias', type: 'hardlink', mode: 0o4755, linkTarget: 'bin/tool'},
        {path: 'var/', type: 'directory', mode: 0o755},
        {path: 'var/spool/', type: 'directory', mode: 0o1770, uid: 0, gid: 12},
      ]),
    ]);
    expect(lstatSync(join(root, 'bin/tool')).ino).toBe(lstatSync(join(root, 'bin/tool-alias')).ino);
    const m = new Map(r.manifest.entries.map((e) => [e.path, e]));
    expect(m.get('bin/tool')).toMatchObject({type: 'file', mode: 0o4755, uid: 0, gid: 0});
    expect(m.get('bin/tool-alias')).toMatchObject({type: 'hardlink', target: 'bin/tool'});
    expect(m.get('var/spool')).toMatchObject({type: 'directory', mode: 0o1770, gid: 12});
    expect(m.get('')).toMatchObject({type: 'directory', mode: 0o755});
    // the database lists the alias with the content checksum of the file it links to
    const db = readFileSync(join(root, 'lib/apk/db/installed'), 'utf8');
    const z = (name: string) => new RegExp(`R:${name}\\na:0:0:4755\\nZ:(\\S+)`).exec(db)?.[1];
    expect(z('tool')).toMatch(/^Q1/);
    expect(z('tool-alias')).toBe(z('tool'));
    expect(db).toContain('F:var/spool\nM:0:12:1770\n');
  });

  it('records a noarch package with the arch it was installed for, as apk does', () => {
    const root = join(tempDir(), 'root');
    install(root, [pkg('data', [{path: 'usr/share/data/x', type: 'file', mode: 0o644, data: Buffer.from('x')}], {arch: 'noarch'})]);
    const db = readFileSync(join(root, 'lib/apk/db/installed'), 'utf8');
    expect(db).toMatch(/\nP:data\nV:1\.0-r0\nA:x86_64\n/);
    // buildApk listed the directories the file is in
    expect(db).toContain('F:usr\nF:usr/share\nF:usr/share/data\nR:x\n');
  });

  it('writes scripts.tar as apk does: two zero blocks at the end, no record padding', () => {
    const root = join(tempDir(), 'root');
    install(root, [pkg('s', [])]);
    expect(readFileSync(join(root, 'lib/apk/db/scripts.tar'))).toEqual(Buffer.alloc(1024));
    const root2 = join(tempDir(), 'root');
    const built = buildApk({meta: meta('withscript'), entries: [], scripts: {'post-install': '#!/bin/sh\n'}, key});
    install(root2, [readApk(built.bytes, 'withscript.apk', {keyring})]);
    const tar = readFileSync(join(root2, 'lib/apk/db/scripts.tar'));
    expect(tar.length).toBe(512 + 512 + 1024);
    expect(tar.subarray(0, 100).toString('latin1').replace(/\0+$/, '')).toBe(`withscript-1.0-r0.${built.checksum}.post-install`);
  });

  it('records device nodes in the manifest only, when allowed', () => {
    const root = join(tempDir(), 'root');
    const p = craft('devs', [
      {path: 'dev/', type: 'directory', mode: 0o755, mtime: 1},
      {path: 'dev/console', type: 'char', mode: 0o600, mtime: 1, devMajor: 5, devMinor: 1},
    ]);
    const r = install(root, [p], {allowDevices: true});
    expect(r.manifest.entries.find((e) => e.path === 'dev/console')).toMatchObject({type: 'char', major: 5, minor: 1, onDisk: false});
    expect(existsSync(join(root, 'dev/console'))).toBe(false);
  });

  it('adds configured users and groups with a home owned by the user', () => {
    const root = join(tempDir(), 'root');
    const base = pkg('alpine-baselayout-data', [
      {path: 'etc/', type: 'directory', mode: 0o755},
      {path: 'etc/passwd', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n')},
      {path: 'etc/group', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:root\nwheel:x:10:root\n')},
      {path: 'etc/shadow', type: 'file', mode: 0o640, gid: 42, data: Buffer.from('root:*::0:::::\n')},
    ]);
    const r = install(root, [base], {
      accounts: {groups: [{name: 'ops', gid: 1100}], users: [{name: 'psy', uid: 1000, groups: ['wheel', 'ops']}]},
    });
    expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).toBe('root:x:0:0:root:/root:/bin/sh\npsy:x:1000:1000::/home/psy:/bin/sh\n');
    expect(readFileSync(join(root, 'etc/group'), 'utf8')).toBe('root:x:0:root\nwheel:x:10:root,psy\nops:x:1100:psy\npsy:x:1000:\n');
    expect(readFileSync(join(root, 'etc/shadow'), 'utf8')).toBe('root:*::0:::::\npsy:!:0:0:99999:7:::\n');
    const m = new Map(r.manifest.entries.map((e) => [e.path, e]));
    expect(m.get('home/psy')).toMatchObject({type: 'directory', mode: 0o700, uid: 1000, gid: 1000});
    expect(m.get('etc/shadow')).toMatchObject({mode: 0o640, gid: 42});
    expect(() => install(join(tempDir(), 'root'), [base], {accounts: {users: [{name: 'root', uid: 5}]}})).toThrow('user root already exists in etc/passwd');
  });

  it('locks an empty root password as Alpine images do, keeping owner and mode', () => {
    const base = pkg('alpine-baselayout-data', [
      {path: 'etc/', type: 'directory', mode: 0o755},
      {path: 'etc/shadow', type: 'file', mode: 0o640, gid: 42, data: Buffer.from('root:::0:::::\nbin:!::0:::::\n')},
    ]);
    const root = join(tempDir(), 'root');
    const r = install(root, [base]);
    expect(readFileSync(join(root, 'etc/shadow'), 'utf8')).toBe('root:*::0:::::\nbin:!::0:::::\n');
    expect(r.manifest.entries.find((e) => e.path === 'etc/shadow')).toMatchObject({mode: 0o640, gid: 42});
    const open = join(tempDir(), 'root');
    install(open, [base], {lockRootPassword: false});
    expect(readFileSync(join(open, 'etc/shadow'), 'utf8')).toBe('root:::0:::::\nbin:!::0:::::\n');
  });
});
