import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {buildApk} from '../src/apk/apk-writer.js';
import {generateSigningKey} from '../src/apk/keys.js';
import {readLock} from '../src/apk/lockfile.js';
import {emptyMeta} from '../src/apk/package-meta.js';
import {indexRepository} from '../src/apk/repository-index.js';
import {runPsy} from './helpers/psy-in-process.js';

/**
 * `psy lock` against a repository whose index goes back in time: a package resolved to a
 * lower version than the lock holds is refused unless --allow-downgrade is given.
 */
const key = generateSigningKey('psy-test', 0x65000000, 2048);
let dir: string;
let archDir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-lock-downgrade-'));
  archDir = join(dir, 'repo', 'x86_64');
  mkdirSync(join(dir, 'keys'));
  writeFileSync(join(dir, 'keys', key.name), key.publicKeyPem);
  writeFileSync(
    join(dir, 'build.config.ts'),
    `export default {targets: [], settings: {alpine: ${JSON.stringify({release: 'v3.20', arch: 'x86_64', repositories: ['repo'], keys: 'keys', world: ['app', 'libfoo', 'tool']})}}};\n`,
  );
});
afterEach(() => rmSync(dir, {recursive: true, force: true}));

/** The repository now serves exactly these versions (a fresh signed index). */
function serve(versions: Record<string, string>): void {
  rmSync(archDir, {recursive: true, force: true});
  mkdirSync(archDir, {recursive: true});
  for (const [name, version] of Object.entries(versions)) {
    const meta = {...emptyMeta(name, version), arch: 'x86_64', description: name, buildDate: 1_700_000_000};
    const built = buildApk({meta, entries: [{path: `usr/share/${name}`, type: 'file', mode: 0o644, data: Buffer.from(version)}], key});
    writeFileSync(join(archDir, `${name}-${version}.apk`), built.bytes);
  }
  indexRepository({archDir, key, description: 'test', mtime: 1_700_000_000});
}

const psy = (...argv: string[]) => runPsy(dir, ...argv);

const lockPath = () => join(dir, 'alpine/packages.lock.json');
const versions = () => Object.fromEntries(readLock(lockPath()).packages.map((p) => [p.name, p.version]));

describe('psy lock and a rolled-back repository', () => {
  it('refuses a lower version, naming every downgraded package with both versions, and leaves the lock alone', async () => {
    serve({app: '2.0-r0', libfoo: '1.10-r1', tool: '3.1-r0'});
    expect((await psy('lock')).code).toBe(0);
    const locked = readFileSync(lockPath(), 'utf8');

    // apk's order, not string order: 1.9 < 1.10, and r0 < r1
    serve({app: '1.0-r0', libfoo: '1.9-r5', tool: '3.1-r0'});
    const r = await psy('lock');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      'psy lock: alpine/packages.lock.json: refusing to downgrade app 2.0-r0 -> 1.0-r0, libfoo 1.10-r1 -> 1.9-r5 (the repositories resolve to older versions than the lock; pass --allow-downgrade if that is intended)',
    );
    expect(readFileSync(lockPath(), 'utf8')).toBe(locked);

    serve({app: '2.0-r0', libfoo: '1.10-r0', tool: '3.1-r0'});
    const rev = await psy('lock');
    expect(rev.code).toBe(1);
    expect(rev.stderr).toContain('refusing to downgrade libfoo 1.10-r1 -> 1.10-r0 (');
  });

  it('--allow-downgrade writes the lower versions and says what changed; upgrades need no flag', async () => {
    serve({app: '2.0-r0', libfoo: '1.0-r0', tool: '3.1-r0'});
    expect((await psy('lock')).code).toBe(0);
    serve({app: '1.0-r0', libfoo: '1.0-r0', tool: '3.1-r0'});
    const r = await psy('lock', '--allow-downgrade');
    expect(r).toMatchObject({code: 0, stderr: ''});
    expect(r.stdout).toBe('alpine/packages.lock.json: 3 packages\n  ~ app 2.0-r0 -> 1.0-r0\n');
    expect(versions()).toEqual({app: '1.0-r0', libfoo: '1.0-r0', tool: '3.1-r0'});

    serve({app: '2.1-r0', libfoo: '1.0_p1-r0', tool: '3.1-r0'});
    const up = await psy('lock');
    expect(up.code).toBe(0);
    expect(versions()).toEqual({app: '2.1-r0', libfoo: '1.0_p1-r0', tool: '3.1-r0'});
  });

  it('documents the flag in the help', async () => {
    const r = await psy('lock', '--help');
    expect(r.stdout).toContain('--allow-downgrade');
    expect(r.stdout).toMatch(/LOWER version than the lock holds/);
  });
});
