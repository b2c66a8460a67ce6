import {mkdtemp, rm} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {build} from '../src/engine/build.js';
import {formatGrubEnv} from '../src/boot/grubenv.js';
import {findPartition, psyopsLabels, writeFatFile} from '../src/disk/index.js';
import {bootAndWatch} from '../src/vm/boot-watch.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData} from './helpers/shared-data.js';
import {fixtureSettings, markerPattern, writeProject} from './os-project.js';

describe.skipIf(!haveAlpineTestData())('psyopsOS image built from the fixture repository boots in QEMU', () => {
  let fx: FixtureRepository;
  let dir: string;
  let image: string;
  beforeAll(async () => {
    fx = await buildFixtureRepository();
    dir = await mkdtemp(join(tmpdir(), 'psy-e2e-boot-'));
    await writeProject(dir, fixtureSettings(dir, fx));
    const t0 = Date.now();
    const r = await build({cwd: dir, targets: ['diskimg'], jobs: 2});
    if (!r.ok) throw new Error(`build failed: ${JSON.stringify(r.failed)}`);
    console.log(`clean build ${((Date.now() - t0) / 1000).toFixed(1)} s, ran: ${r.ran.join(' ')}`);
    image = r.outputs['diskimg']!['image']!;
  }, 900_000);
  afterAll(async () => {
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  it('boots slot A from RAM with the modloop mounted, then slot B once the env block says B', async () => {
    const a = await bootAndWatch({image, accel: 'tcg', logFile: join(dir, 'serial-a.log'), marker: markerPattern, timeoutMs: 420_000});
    console.log(`boot A: ${a.seconds.toFixed(1)} s: ${a.line}`);
    expect(a.match[1]).toBe('psyopsOS-A');
    expect(a.match[2]).toBe('overlay');
    expect(a.match[3]).toBe('yes');
    expect(a.log).toContain('Loading psyopsOS slot psyopsOS-A into RAM: ok.');

    const esp = await findPartition(image, psyopsLabels.esp);
    await writeFatFile(image, esp, '/grubenv', formatGrubEnv({psyopsos_default: psyopsLabels.b}), 1700000000);
    const b = await bootAndWatch({image, accel: 'tcg', logFile: join(dir, 'serial-b.log'), marker: markerPattern, timeoutMs: 420_000});
    console.log(`boot B: ${b.seconds.toFixed(1)} s: ${b.line}`);
    expect(b.match[1]).toBe('psyopsOS-B');
    expect(b.log).toContain('Loading psyopsOS slot psyopsOS-B into RAM: ok.');
  }, 900_000);
});
