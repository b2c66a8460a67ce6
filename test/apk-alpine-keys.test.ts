import {createHash} from 'node:crypto';
import {readdirSync, readFileSync} from 'node:fs';
import {join} from 'node:path';
import {gunzipSync} from 'node:zlib';
import {describe, expect, it} from 'vitest';
import {readApkIndex} from '../src/apk/apkindex.js';
import {loadKeyring} from '../src/apk/keys.js';
import {readTar} from '../src/tar/index.js';
import {alpineTestData, haveAlpineTestData, repoRoot} from './helpers/shared-data.js';

const keysDir = join(repoRoot, 'alpine', 'keys');

/** `<sha256>  ./<path>` lines of the test data's published checksum list. */
function publishedSums(): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of readFileSync(join(alpineTestData, 'SHA256SUMS'), 'utf8').split('\n')) {
    const m = /^([0-9a-f]{64}) {2}\.\/(.+)$/.exec(line);
    if (m) sums.set(m[2]!, m[1]!);
  }
  return sums;
}

// alpine/keys ships Alpine's public x86_64 signing keys, so that `psy lock` works on a
// fresh clone; they must be exactly the keys Alpine publishes, nothing of ours.
describe.skipIf(!haveAlpineTestData())("Alpine's public keys in alpine/keys", () => {
  const shipped = readdirSync(keysDir).sort();
  const minirootfs = readTar(gunzipSync(readFileSync(join(alpineTestData, 'minirootfs', 'alpine-minirootfs-3.20.3-x86_64.tar.gz'))), 'minirootfs');

  it('are the x86_64 keys of the official alpine-keys package (usr/share/apk/keys/x86_64 of the minirootfs)', () => {
    const x86_64 = minirootfs
      .filter((e) => e.path.startsWith('./usr/share/apk/keys/x86_64/') && e.type === 'symlink')
      .map((e) => e.path.split('/').pop()!)
      .sort();
    expect(x86_64.length).toBeGreaterThan(0);
    expect(shipped).toEqual(x86_64);
  });

  it('match their published SHA-256 fingerprints and the bytes alpine-keys installs', () => {
    const sums = publishedSums();
    for (const name of shipped) {
      const bytes = readFileSync(join(keysDir, name));
      expect(createHash('sha256').update(bytes).digest('hex'), name).toBe(sums.get(`keys/${name}`));
      const packaged = minirootfs.find((e) => e.path === `./usr/share/apk/keys/${name}`);
      expect(packaged?.data.equals(bytes), name).toBe(true);
    }
  });

  it("verify a real signed x86_64 index of Alpine's mirror", () => {
    const keyring = loadKeyring(keysDir);
    const where = join(alpineTestData, 'v3.16', 'main', 'x86_64', 'APKINDEX.tar.gz');
    const index = readApkIndex(readFileSync(where), where, {keyring});
    expect(index.signedBy).toBe('alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub');
    expect(index.records.length).toBe(4929);
  });
});
