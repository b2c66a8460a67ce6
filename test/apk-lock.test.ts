import {mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterEach, beforeAll, describe, expect, it} from 'vitest';
import {readLock} from '../src/apk/lockfile.js';
import {validateAlpineSettings} from '../src/apk/settings.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData} from './helpers/shared-data.js';
import {runPsy} from './helpers/psy-in-process.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, {recursive: true, force: true});
});

const psy = runPsy;

function project(alpine: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'psy-apk-lock-'));
  dirs.push(dir);
  writeConfig(dir, alpine);
  return dir;
}

function writeConfig(dir: string, alpine: unknown): void {
  writeFileSync(join(dir, 'build.config.ts'), `export default {targets: [], settings: {alpine: ${JSON.stringify(alpine)}}};\n`);
}

describe.skipIf(!haveAlpineTestData())('psy lock', () => {
  let fx: FixtureRepository;
  beforeAll(async () => {
    fx = await buildFixtureRepository({kernel: false});
  });
  const alpine = (world: string[]) => ({
    release: 'v3.20',
    arch: 'x86_64',
    repositories: [fx.repoDir],
    keys: fx.keysDir,
    world,
  });

  it('writes alpine/packages.lock.json and --check agrees; a world change fails --check', async () => {
    const dir = project(alpine(['busybox', 'alpine-baselayout']));
    const r = await psy(dir, 'lock');
    expect(r).toMatchObject({code: 0, stderr: ''});
    expect(r.stdout).toMatch(/^alpine\/packages\.lock\.json: \d+ packages\n$/);
    const lock = readLock(join(dir, 'alpine/packages.lock.json'));
    expect(lock.world).toEqual(['busybox', 'alpine-baselayout']);
    expect(lock.packages.map((p) => p.name)).toEqual(
      expect.arrayContaining(['musl', 'busybox', 'busybox-binsh', 'alpine-baselayout', 'alpine-baselayout-data']),
    );
    for (const p of lock.packages) {
      expect(Object.keys(p)).toEqual(['name', 'version', 'repository', 'checksum']);
      expect(p.repository).toBe(fx.repoDir);
    }
    expect(await psy(dir, 'lock', '--check')).toMatchObject({code: 0, stdout: `alpine/packages.lock.json: up to date (${lock.packages.length} packages)\n`});
    // unchanged on a second run (byte-identical file)
    const before = readFileSync(join(dir, 'alpine/packages.lock.json'), 'utf8');
    expect((await psy(dir, 'lock')).stdout).toMatch(/unchanged/);
    expect(readFileSync(join(dir, 'alpine/packages.lock.json'), 'utf8')).toBe(before);

    writeConfig(dir, alpine(['busybox', 'alpine-baselayout', 'zlib']));
    const bad = await psy(dir, 'lock', '--check');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('psy lock: alpine/packages.lock.json: world adds zlib\n');
    expect(bad.stderr).toContain('is out of date (run psy lock)');
    // relocking says what changed
    const relock = await psy(dir, 'lock');
    expect(relock.stdout).toBe(`alpine/packages.lock.json: ${lock.packages.length + 1} packages\n  + zlib 1.3.1-r1\n`);
    expect((await psy(dir, 'lock', '--check')).code).toBe(0);
  });

  it('--check notices a locked package that the repository no longer has', async () => {
    const dir = project(alpine(['zlib']));
    expect((await psy(dir, 'lock')).code).toBe(0);
    const path = join(dir, 'alpine/packages.lock.json');
    const text = readFileSync(path, 'utf8');
    const lock = readLock(path);
    const zlib = lock.packages.find((p) => p.name === 'zlib')!;
    writeFileSync(path, text.replace(zlib.checksum, 'Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA='));
    const r = await psy(dir, 'lock', '--check');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`zlib: locked ${zlib.version} (Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=) is no longer available`);
  });

  it('fails with one line naming the missing package and who needs it', async () => {
    const dir = project(alpine(['busybox', 'openssh']));
    const r = await psy(dir, 'lock');
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: "psy lock: cannot resolve 'openssh' required by world: no package in the repositories provides 'openssh'\n",
    });
  });

  it('rejects bad settings with the field named', async () => {
    const dir = project({...alpine(['busybox']), world: 'busybox'});
    expect(await psy(dir, 'lock')).toMatchObject({code: 1, stderr: 'psy lock: settings.alpine.world must be a list of non-empty strings\n'});
    writeFileSync(join(dir, 'build.config.ts'), 'export default {targets: []};\n');
    expect(await psy(dir, 'lock')).toMatchObject({code: 1, stderr: 'psy lock: settings.alpine is missing in the config\n'});
    const missingLock = project(alpine(['busybox']));
    mkdirSync(join(missingLock, 'alpine'));
    expect(await psy(missingLock, 'lock', '--check')).toMatchObject({
      code: 1,
      stderr: `psy lock: lockfile ${join(missingLock, 'alpine/packages.lock.json')} does not exist (run psy lock)\n`,
    });
  });
});

describe('settings.alpine validation', () => {
  const ok = {
    release: 'v3.20',
    arch: 'x86_64',
    repositories: ['https://dl-cdn.alpinelinux.org/alpine/{release}/main'],
    keys: 'alpine/keys',
    world: ['alpine-base'],
  };
  it('accepts a full configuration', () => {
    const s = validateAlpineSettings({
      ...ok,
      accounts: {groups: [{name: 'ops', gid: 1100}], users: [{name: 'psy', uid: 1000, groups: ['ops'], shell: '/bin/ash'}]},
    });
    expect(s.accounts?.users?.[0]).toMatchObject({name: 'psy', uid: 1000, groups: ['ops']});
  });
  it('accepts the names the OS build uses and leaves its other fields alone', () => {
    const s = validateAlpineSettings({
      ...ok,
      keys: undefined,
      keysDir: 'k',
      nodeRepositories: ['https://x/main'],
      cacheDir: 'c',
      kernelFlavor: 'lts',
      partitions: {},
    });
    expect(s).toMatchObject({keys: 'k', runtimeRepositories: ['https://x/main'], cacheDir: 'c'});
    expect(s).not.toHaveProperty('kernelFlavor');
    expect(() => validateAlpineSettings({...ok, keys: undefined})).toThrow(
      'settings.alpine.keys must be a folder of trusted keys or a list of folders (keysDir also works)',
    );
  });
  it.each([
    [{...ok, arch: ''}, 'settings.alpine.arch must be a non-empty string'],
    [{...ok, repositories: []}, 'settings.alpine.repositories must name at least one repository'],
    [{...ok, repositories: ['a b c']}, "settings.alpine.repositories[0] 'a b c' is not '[@tag] URL-or-folder'"],
    [{...ok, world: ['foo>']}, "settings.alpine.world[0] 'foo>' is not a dependency (name, name>=version, name@tag, !name)"],
    [{...ok, accounts: {users: [{name: 'Bad Name', uid: 1}]}}, 'settings.alpine.accounts.users[0].name must be a valid account name'],
    [{...ok, accounts: {users: [{name: 'x', uid: -1}]}}, 'settings.alpine.accounts.users[0].uid must be an integer 0..65534'],
  ])('refuses %j', (value, message) => {
    expect(() => validateAlpineSettings(value)).toThrow(message);
  });
});
