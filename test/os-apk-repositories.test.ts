import {readFile, readdir, mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join, relative} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {build} from '../src/engine/build.js';
import type {PsyConfig, TargetConfig} from '../src/engine/config.js';
import {psyopsosConfig} from '../targets/psyopsos.js';
import {deaddropApkRepository, withDefaults} from '../targets/settings.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {fixtureSettings, writeProject} from './os-project.js';

const PUBLIC = 'https://psyops.example.com';

const target = (c: PsyConfig, name: string) => (c.targets as TargetConfig[]).find((x) => x.name === name)!;

describe('where nodes find our APK repository', () => {
  it('is derived from the deaddrop bucket: its public URL, else its S3 URL; none without a bucket', () => {
    expect(deaddropApkRepository({bucket: 'b', prefix: 'nodes/', publicUrl: `${PUBLIC}/`}, '3.21')).toBe(`${PUBLIC}/nodes/apk/v3.21/psyopsOS`);
    expect(deaddropApkRepository({bucket: 'b', publicUrl: PUBLIC}, 'v3.21')).toBe(`${PUBLIC}/apk/v3.21/psyopsOS`);
    expect(deaddropApkRepository({bucket: 'b', prefix: '/p', endpoint: 'http://127.0.0.1:9000/'}, '3.21')).toBe('http://127.0.0.1:9000/b/p/apk/v3.21/psyopsOS');
    expect(deaddropApkRepository({bucket: 'b', region: 'us-east-2'}, '3.21')).toBe('https://b.s3.us-east-2.amazonaws.com/apk/v3.21/psyopsOS');
    expect(deaddropApkRepository({}, '3.21')).toBeUndefined();
    expect(deaddropApkRepository(undefined, '3.21')).toBeUndefined();
  });

  it('the config puts it after the Alpine mirrors in the root install; an explicit setting wins, null turns it off', () => {
    const alpine = {release: '3.21', repositories: ['https://dl-cdn.alpinelinux.org/alpine/v3.21/main', 'local/folder']};
    const deaddrop = {ostar: {target: 'ostar'}, s3: {bucket: 'b', publicUrl: PUBLIC}};
    const rootfsRepos = (c: PsyConfig) => {
      const t = target(c, 'rootfs');
      return {repos: (t.params!['settings'] as {nodeRepositories: string[]}).nodeRepositories, keys: 'ownKeys' in (t.inputs ?? {})};
    };
    expect(rootfsRepos(psyopsosConfig({...alpine, ownPackages: []}, {settings: {deaddrop}}))).toEqual({
      repos: ['https://dl-cdn.alpinelinux.org/alpine/v3.21/main', `${PUBLIC}/apk/v3.21/psyopsOS`],
      keys: true,
    });
    expect(rootfsRepos(psyopsosConfig({...alpine, ownPackages: [], psyopsRepository: 'https://x/psyopsOS'}, {settings: {deaddrop}})).repos).toEqual([
      'https://dl-cdn.alpinelinux.org/alpine/v3.21/main',
      'https://x/psyopsOS',
    ]);
    expect(rootfsRepos(psyopsosConfig({...alpine, ownPackages: [], psyopsRepository: null}, {settings: {deaddrop}}))).toEqual({
      repos: ['https://dl-cdn.alpinelinux.org/alpine/v3.21/main'],
      keys: false,
    });
    // the default deaddrop has no bucket: nothing to name
    expect(rootfsRepos(psyopsosConfig({...alpine, ownPackages: []})).repos).toEqual(['https://dl-cdn.alpinelinux.org/alpine/v3.21/main']);
    // the boot and kernel roots do not change with it
    const a = target(psyopsosConfig(alpine, {settings: {deaddrop}}), 'kernel-root').params;
    const b = target(psyopsosConfig({...alpine, psyopsRepository: null}, {settings: {deaddrop}}), 'kernel-root').params;
    expect(a).toEqual(b);
    expect(withDefaults({}).psyopsRepository).toBeUndefined();
  });
});

describe.skipIf(!haveAlpineTestData())('the built root names our repository and trusts its key', () => {
  let fx: FixtureRepository;
  let dir: string;
  beforeAll(async () => {
    fx = await buildFixtureRepository();
    dir = await mkdtemp(join(tmpdir(), 'psy-os-apkrepos-'));
  }, 300_000);
  afterAll(async () => {
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  it('etc/apk/repositories lists the deaddrop repository and etc/apk/keys holds the key that signs it', async () => {
    const settings = fixtureSettings(dir, fx);
    await writeProject(dir, settings);
    // as a user writes it: the bucket in settings.deaddrop, nothing about apk
    const targets = relative(dir, join(repoRoot, 'targets/psyopsos.js'));
    const deaddrop = {ostar: {target: 'ostar'}, apk: {target: 'apkrepo', output: 'repo'}, s3: {bucket: 'psyops-deaddrop', prefix: 'fleet/', publicUrl: PUBLIC}};
    await writeFile(
      join(dir, 'build.config.ts'),
      `import {psyopsosConfig} from '${targets}';\nexport default psyopsosConfig(${JSON.stringify(settings)}, {settings: {deaddrop: ${JSON.stringify(deaddrop)}}});\n`,
    );
    const r = await build({cwd: dir, targets: ['rootfs'], jobs: 2});
    expect(r.ok, JSON.stringify(r.failed)).toBe(true);
    const root = r.outputs['rootfs']!['root']!;
    const lines = (await readFile(join(root, 'etc/apk/repositories'), 'utf8')).split('\n').filter(Boolean);
    expect(lines).toEqual([`${PUBLIC}/fleet/apk/v3.20/psyopsOS`]);
    // the key apkrepo signs with (a development key here) is trusted by the node's apk
    const signing = await readdir(r.outputs['apkrepo']!['keys']!);
    expect(signing.length).toBe(1);
    const keys = await readdir(join(root, 'etc/apk/keys'));
    expect(keys).toContain(signing[0]);
    expect(await readFile(join(root, 'etc/apk/keys', signing[0]!))).toEqual(await readFile(join(r.outputs['apkrepo']!['keys']!, signing[0]!)));
    // and the Alpine keys are still there
    for (const k of await readdir(fx.keysDir)) expect(keys).toContain(k);
  }, 300_000);
});
