import {execFileSync} from 'node:child_process';
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {createGzip} from 'node:zlib';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {generateSigningKey} from '../src/apk/keys.js';
import {entryHeader} from '../src/tar/index.js';
import {assertBuilt} from './helpers/deaddrop-cli.js';
import {repoRoot} from './helpers/shared-data.js';

const GiB = 1024 ** 3;
const RSS_LIMIT_KIB = 300 * 1024;
let dir: string;
let bombPath: string;
let keyPath: string;

/**
 * A gzip member holding a tar with one 1 GiB file of zeros, deflated as it is made:
 * neither the 1 GiB nor the whole compressed stream passes through memory at once.
 */
async function makeBomb(path: string): Promise<number> {
  const gz = createGzip({level: 1});
  const chunks: Buffer[] = [];
  gz.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((resolve) => gz.on('end', resolve));
  const write = async (b: Buffer) => {
    if (!gz.write(b)) await new Promise((resolve) => gz.once('drain', resolve));
  };
  await write(entryHeader({path: 'APKINDEX', type: 'file', mode: 0o644, mtime: 1, source: {path: 'zeros', size: GiB}}));
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < GiB / zeros.length; i++) await write(zeros);
  await write(Buffer.alloc(1024));
  gz.end();
  await done;
  const bomb = Buffer.concat(chunks);
  writeFileSync(path, bomb);
  return bomb.length;
}

function run(scenario: string): {code?: string; message?: string; accepted?: boolean; maxRssKiB: number} {
  const out = execFileSync(process.execPath, [join(repoRoot, 'test/helpers/apk-bomb-child.mjs'), join(repoRoot, 'dist'), bombPath, keyPath, scenario], {
    encoding: 'utf8',
  });
  return JSON.parse(out);
}

describe('decompression bombs are refused with bounded memory', () => {
  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'psy-apk-bomb-'));
    bombPath = join(dir, 'bomb.gz');
    keyPath = join(dir, 'key.json');
    writeFileSync(keyPath, JSON.stringify(generateSigningKey('bomb', 1, 2048)));
    const size = await makeBomb(bombPath);
    expect(size).toBeLessThan(8 << 20);
  }, 120_000);
  afterAll(() => rmSync(dir, {recursive: true, force: true}));

  const cases: Array<[string, string, RegExp]> = [
    [
      'a signed package whose data inflates past its declared installed size',
      'package-declared-size',
      /package bomb\.apk: data member \(declared installed size 4096\) at byte \d+ inflates to more than 16785408 bytes/,
    ],
    ['a package whose data member fails its datahash', 'package-datahash', /package bomb\.apk: data section does not match its datahash/],
    [
      'a signed package whose control member is the bomb',
      'package-control',
      /package bomb\.apk: control member at byte \d+ inflates to more than 16777216 bytes/,
    ],
    ['a signed index whose body is the bomb', 'index-signed', /index APKINDEX\.tar\.gz: APKINDEX body at byte \d+ inflates to more than 134217728 bytes/],
    ['an index whose body was swapped for the bomb', 'index-forged', /index APKINDEX\.tar\.gz: signature by bomb-00000001\.rsa\.pub does not verify/],
  ];
  for (const [what, scenario, message] of cases) {
    it(`refuses ${what} using under 300 MB`, () => {
      const r = run(scenario);
      expect(r.accepted).toBeUndefined();
      expect(r.message).toMatch(message);
      console.log(`${scenario}: peak RSS ${Math.round(r.maxRssKiB / 1024)} MiB`);
      expect(r.maxRssKiB).toBeLessThan(RSS_LIMIT_KIB);
    }, 60_000);
  }
});
