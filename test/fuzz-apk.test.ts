import {createHash} from 'node:crypto';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';
import fc from 'fast-check';
import {describe, expect, it} from 'vitest';
import {readApk} from '../src/apk/apk-package.js';
import {buildApk} from '../src/apk/apk-writer.js';
import {parseIndexText, readApkIndex, writeApkIndex} from '../src/apk/apkindex.js';
import {parseDependency} from '../src/apk/dependency.js';
import {gzipMember, inflateGzipMember} from '../src/apk/gzip-members.js';
import {formatInstalledDb, type InstalledDir} from '../src/apk/installed-db.js';
import {generateSigningKey, keyringFromPem} from '../src/apk/keys.js';
import {emptyMeta, formatPkginfo, parsePkginfo, type PackageMeta} from '../src/apk/package-meta.js';
import {signatureMember} from '../src/apk/signature.js';
import {writeTar} from '../src/tar/index.js';
import {fixTarChecksums, fuzzParams, mutatedBytes, mutatedText, parsesOrRefuses} from './helpers/fuzz.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

const key = generateSigningKey('fuzz', 0x65000000, 1024);
const keyring = keyringFromPem([[key.name, key.publicKeyPem]]);

const meta: PackageMeta = {
  ...emptyMeta('fuzzed', '1.2.3-r4'),
  arch: 'x86_64',
  buildDate: 1700000000,
  installedSize: 8192,
  depends: ['so:libc.musl-x86_64.so.1', 'busybox>=1.35'],
  provides: ['cmd:fuzzed=1.2.3-r4'],
  triggers: ['/usr/share/fuzz/*'],
};
const built = buildApk({
  meta,
  key,
  compressionLevel: 1,
  scripts: {'post-install': '#!/bin/sh\necho hi\n'},
  entries: [
    {path: 'usr', type: 'directory', mode: 0o755},
    {path: 'usr/bin', type: 'directory', mode: 0o755},
    {path: 'usr/bin/fuzzed', type: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\nexit 0\n')},
    {path: 'usr/bin/alias', type: 'symlink', mode: 0o777, linkTarget: 'fuzzed'},
    {path: `usr/share/${'deep/'.repeat(25)}note`, type: 'file', mode: 0o644, uid: 1000, gid: 1000, data: Buffer.from('note')},
  ],
});
const record = {...built.meta, checksum: built.checksum, size: built.bytes.length};
const index = writeApkIndex({records: [record], description: 'fuzz', key, mtime: 1700000000});
const indexText = `P:${meta.name}\nV:${meta.version}\nC:${built.checksum}\nS:1\nI:8192\nt:1700000000\nk:10\nq:5\nD:so:libc.musl-x86_64.so.1 busybox>=1.35\n\n`;
const dirs = new Map<string, InstalledDir>([
  [
    'usr/bin',
    {
      path: 'usr/bin',
      uid: 0,
      gid: 0,
      mode: 0o755,
      files: new Map([['fuzzed', {name: 'fuzzed', uid: 0, gid: 0, mode: 0o755, checksum: 'Q1' + 'A'.repeat(27) + '='}]]),
    },
  ],
]);
const installedDb = formatInstalledDb([{record, dirs, scripts: new Map(), triggers: meta.triggers}]);

const packages = [built.bytes];
if (haveAlpineTestData()) packages.push(readFileSync(join(alpineTestData, 'v3.16/main/x86_64/curl-7.83.1-r1.apk')));

/** A correctly signed package around this .PKGINFO and data tar (datahash made right). */
function signed(pkginfo: string, dataTar: Buffer): Buffer {
  const dataGz = gzipMember(dataTar, 1);
  const info = pkginfo.replace(/^datahash = .*$/m, `datahash = ${createHash('sha256').update(dataGz).digest('hex')}`);
  const control = gzipMember(writeTar([{path: '.PKGINFO', type: 'file', mode: 0o644, mtime: 1, data: Buffer.from(info)}], {endOfArchive: false}), 1);
  return Buffer.concat([signatureMember(control, key, 1), control, dataGz]);
}

const pkginfoText = formatPkginfo({...meta, datahash: '0'.repeat(64)});
// the data tar of the built package, inflated
const members: Buffer[] = [];
let signatureLength = 0;
for (let at = 0; at < built.bytes.length;) {
  const m = inflateGzipMember(built.bytes, at, 'built', 1 << 20);
  members.push(m.data);
  if (at === 0) signatureLength = m.length;
  at += m.length;
}
const dataTar = members[2]!;

describe('fuzz: APK packages, indexes and database records parse or refuse with a PsyError', () => {
  it('package files: mutated bytes, verified and vouched-for reads', () => {
    fc.assert(
      fc.property(mutatedBytes(packages), (bytes) => {
        parsesOrRefuses(() => readApk(bytes, 'fuzz.apk', {keyring}));
        parsesOrRefuses(() => readApk(bytes, 'fuzz.apk', {skipSignature: true}));
      }),
      fuzzParams(400),
    );
  });

  it('correctly signed packages around mutated .PKGINFO and data tars', () => {
    const outcomes = new Set<string>();
    fc.assert(
      fc.property(mutatedText([pkginfoText]), mutatedBytes([dataTar]).map(fixTarChecksums), (info, tar) => {
        const bytes = signed(info, tar);
        outcomes.add(
          parsesOrRefuses(() => {
            const pkg = readApk(bytes, 'fuzz.apk', {keyring});
            for (const n of [pkg.meta.installedSize, pkg.meta.buildDate]) expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
            for (const e of pkg.dataEntries) expect(Number.isSafeInteger(e.uid) && Number.isSafeInteger(e.gid)).toBe(true);
          }),
        );
      }),
      fuzzParams(400),
    );
    // the mutations reach both sides: some still parse, some are refused
    expect([...outcomes].sort()).toEqual(['parsed', 'refused']);
  });

  it('packages whose signature tar is mutated', () => {
    const control = built.bytes.subarray(signatureLength, built.bytes.length);
    fc.assert(
      fc.property(mutatedBytes([members[0]!]).map(fixTarChecksums), (sigTar) => {
        parsesOrRefuses(() => readApk(Buffer.concat([gzipMember(sigTar, 1), control]), 'fuzz.apk', {keyring}));
      }),
      fuzzParams(400),
    );
  });

  it('index files, signed and not', () => {
    fc.assert(
      fc.property(mutatedBytes([index]), (bytes) => {
        parsesOrRefuses(() => readApkIndex(bytes, 'fuzz', {keyring}));
        parsesOrRefuses(() => readApkIndex(bytes, 'fuzz', {skipSignature: true}));
      }),
      fuzzParams(400),
    );
  });

  it('index text, installed database records, .PKGINFO and dependencies', () => {
    fc.assert(
      fc.property(mutatedText([indexText, installedDb, pkginfoText]), fc.string({maxLength: 40}), (text, dep) => {
        parsesOrRefuses(() => {
          for (const r of parseIndexText(text, 'fuzz')) {
            for (const n of [r.size, r.installedSize, r.buildDate]) expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
          }
        });
        parsesOrRefuses(() => parsePkginfo(text, 'fuzz'));
        parsesOrRefuses(() => parseDependency(dep));
      }),
      fuzzParams(2000),
    );
  });
});
