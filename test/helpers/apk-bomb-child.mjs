// Runs one decompression-bomb scenario against the built reader (dist/) in its own
// process, so the test can read this process's peak memory. Prints one JSON line.
import {createHash} from 'node:crypto';
import {readFileSync} from 'node:fs';
import {join} from 'node:path';

const [distDir, bombPath, keyPath, scenario] = process.argv.slice(2);
const load = (f) => import(join(distDir, f));
const {readApk} = await load('apk/apk-package.js');
const {readApkIndex} = await load('apk/apkindex.js');
const {gzipMember} = await load('apk/gzip-members.js');
const {signatureMember} = await load('apk/signature.js');
const {keyringFromPem} = await load('apk/keys.js');
const {emptyMeta, formatPkginfo} = await load('apk/package-meta.js');
const {writeTar} = await load('tar/index.js');

const key = JSON.parse(readFileSync(keyPath, 'utf8'));
const keyring = keyringFromPem([[key.name, key.publicKeyPem]]);
const bomb = readFileSync(bombPath);

const control = (fields) =>
  gzipMember(
    writeTar(
      [{path: '.PKGINFO', type: 'file', mode: 0o644, mtime: 1, data: Buffer.from(formatPkginfo({...emptyMeta('bomb', '1.0-r0'), arch: 'x86_64', ...fields}))}],
      {endOfArchive: false},
    ),
  );
const sha256 = (b) => createHash('sha256').update(b).digest('hex');

const scenarios = {
  // a correctly signed package whose data member inflates far past its declared size
  'package-declared-size': () => {
    const c = control({installedSize: 4096, datahash: sha256(bomb)});
    return readApk(Buffer.concat([signatureMember(c, key, 1), c, bomb]), 'bomb.apk', {keyring});
  },
  // a bomb swapped in for the data member: its datahash fails before inflation
  'package-datahash': () => {
    const c = control({installedSize: 4096, datahash: sha256(Buffer.from('the real data'))});
    return readApk(Buffer.concat([signatureMember(c, key, 1), c, bomb]), 'bomb.apk', {keyring});
  },
  // the control member itself is the bomb (correctly signed)
  'package-control': () => readApk(Buffer.concat([signatureMember(bomb, key, 1), bomb, control({})]), 'bomb.apk', {keyring}),
  // a correctly signed index whose body is the bomb
  'index-signed': () => readApkIndex(Buffer.concat([signatureMember(bomb, key, 1), bomb]), 'APKINDEX.tar.gz', {keyring}),
  // an index body swapped for the bomb: the signature fails before inflation
  'index-forged': () => {
    const honest = gzipMember(writeTar([{path: 'APKINDEX', type: 'file', mode: 0o644, mtime: 1, data: Buffer.from('P:x\nV:1\n\n')}]));
    const sig = signatureMember(honest, key, 1);
    return readApkIndex(Buffer.concat([sig, bomb]), 'APKINDEX.tar.gz', {keyring});
  },
};

/** @type {Record<string, unknown>} */
let outcome;
try {
  scenarios[scenario]();
  outcome = {accepted: true};
} catch (err) {
  outcome = {name: err.name, code: err.code, message: err.message};
}
outcome.maxRssKiB = process.resourceUsage().maxRSS;
process.stdout.write(JSON.stringify(outcome) + '\n');
