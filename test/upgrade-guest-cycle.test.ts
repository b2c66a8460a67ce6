/**
 * The whole update cycle from inside the guest: a psyopsOS image built from the offline
 * fixture (neuralupgrade in its root, the repository and public key from its settings)
 * updates itself from a replica served by `psy deaddrop serve` on the host (10.0.2.2 on
 * QEMU's user network). Its own postboot hooks apply the latest OS to the other slot,
 * mark a trial boot good, and a panicking update falls back by itself. QEMU runs with
 * -no-reboot: a guest reboot ends QEMU, and the test starts it again on the same disk.
 */
import {existsSync} from 'node:fs';
import {cp, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {generateSigningKey} from '../src/apk/keys.js';
import {serveReplica, type RunningServer} from '../src/deaddrop/serve.js';
import {build} from '../src/engine/build.js';
import {parseTar, writeTar, type TarEntry} from '../src/image/tar.js';
import {formatPublicKey, generateKeyPair, type KeyPair} from '../src/sign/keys.js';
import {bootAndWatch} from '../src/vm/boot-watch.js';
import {buildFixtureRepository} from './fixtures/build-fixture-repository.js';
import {publishOs} from './helpers/deaddrop-fixtures.js';
import {healthHook, stateLib} from './helpers/guest-hooks.js';
import {haveAlpineTestData} from './helpers/shared-data.js';
import {testInitramfs} from './helpers/test-boot-payload.js';
import {fixtureSettings, lockProject, writeConfig, writeProject} from './os-project.js';

const haveQemu = existsSync('/usr/bin/qemu-system-x86_64') && existsSync('/usr/share/ovmf/OVMF.fd');

/** Test hooks (named as such): policy a deployment would write for itself. */
const hooks: Record<string, string> = {
  // a trial boot (booted slot is not the known-good default) that got this far is healthy
  '40-test-health': healthHook,
  // apply the repository's latest OS to the other slot when neither slot has it, then reboot
  '50-test-update': [
    '#!/bin/sh',
    '# test hook: apply a new OS from the configured repository and try it',
    stateLib,
    'eval "$(state show)" || exit 1',
    'if [ "$latest" = "-" ] || [ "$latest" = "$mine" ] || [ "$latest" = "$theirs" ]; then',
    '  echo "PSYOPSOS-CYCLE nothing-new slot=$booted version=$mine latest=$latest"',
    '  exit 0',
    'fi',
    'neuralupgrade apply nonbooted --os-version latest || { echo "PSYOPSOS-CYCLE apply-failed"; exit 1; }',
    'sync',
    'echo "PSYOPSOS-CYCLE applied slot=$other version=$latest"',
    'reboot -f',
    '',
  ].join('\n'),
};

const cycleMarker = /PSYOPSOS-CYCLE (applied|done)\b(.*)/;

describe.skipIf(!haveAlpineTestData() || !haveQemu)('the update cycle inside the guest', () => {
  let dir: string;
  let keys: KeyPair;
  let server: RunningServer;
  let replica: string;
  let image: string;
  let builtOstar: string;
  let n = 0;
  const durations: string[] = [];

  const publish = (path: string) => publishOs(replica, keys, path);

  async function boot(what: string): Promise<{kind: string; log: string; said: string}> {
    n++;
    const b = await bootAndWatch({
      image,
      // the guest writes its own disk: no snapshot
      snapshot: false,
      accel: 'tcg',
      memoryMiB: 2048,
      noNetwork: false,
      logFile: join(dir, `boot-${n}.log`),
      marker: cycleMarker,
      timeoutMs: 900_000,
    });
    durations.push(`${what} ${b.seconds.toFixed(0)} s`);
    console.log(`boot ${n} (${what}): ${b.seconds.toFixed(1)} s`);
    // what the hooks said, as the failure message of the stage's assertions
    const said = b.log
      .split('\n')
      .filter((l) => /PSYOPSOS|postboot|hook|neuralupgrade|rror|EPIPE|EAGAIN|internal/.test(l))
      .slice(-40)
      .join('\n');
    return {kind: b.match[1]!, log: b.log, said};
  }

  beforeAll(async () => {
    const fx = await buildFixtureRepository();
    dir = await mkdtemp(join(tmpdir(), 'psy-guest-cycle-'));
    replica = join(dir, 'replica');
    await mkdir(replica);
    server = await serveReplica({root: replica, host: '127.0.0.1', port: 0});
    const port = new URL(server.url).port;
    keys = generateKeyPair();
    await mkdir(join(dir, 'keys'));
    await writeFile(join(dir, 'keys/release.pub'), formatPublicKey(keys.publicKey));

    await writeProject(dir, fixtureSettings(dir, fx));
    const d = join(dir, 'test-overlay/etc/psyopsOS/postboot.d');
    await mkdir(d, {recursive: true});
    for (const [name, text] of Object.entries(hooks)) await writeFile(join(d, name), text, {mode: 0o755});
    // OpenRC's local service stands in: the postboot hooks, then a marker and power off
    await writeFile(
      join(dir, 'test-overlay/etc/inittab'),
      "::sysinit:/bin/sh -c '/usr/sbin/psyopsos-postboot > /dev/console 2>&1; sync; echo PSYOPSOS-CYCLE done > /dev/console; poweroff -f'\n",
    );
    const key = 'keys/psy-test.rsa';
    await writeFile(join(dir, key), generateSigningKey('psy-test', 0x65f0a001, 2048).privateKeyPem);
    const settings = fixtureSettings(dir, fx, {
      ownPackages: ['neuralupgrade'],
      apkBuildKey: key,
      partitions: {espMiB: 40, secretMiB: 8, slotMiB: 400},
      updatePubkey: 'keys/release.pub',
      updateRepository: `http://10.0.2.2:${port}/os`,
    });
    await writeConfig(dir, settings);
    await lockProject(dir, settings);
    const t0 = Date.now();
    const r = await build({cwd: dir, targets: ['diskimg'], jobs: 2});
    if (!r.ok) throw new Error(`build failed: ${JSON.stringify(r.failed)}`);
    console.log(`image build ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    image = join(dir, 'disk.img');
    await cp(r.outputs['diskimg']!['image']!, image);
    builtOstar = r.outputs['ostar']!['ostar']!;
  }, 1_800_000);
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  it('A applies v2 to B and reboots; B marks itself good; B stays; a panicking v3 is tried once on A and B boots again', async () => {
    const v2 = await publish(builtOstar);

    let b = await boot('A applies v2');
    expect(b.kind, b.said).toBe('applied');
    expect(b.log, b.said).toContain('PSYOPSOS-CYCLE booted=A default=A');
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE applied slot=B version=${v2}`);
    // seconds from start to exit on the node (TCG): `node -e 0`, `neuralupgrade --version`
    const starts = [...b.log.matchAll(/PSYOPSOS-CYCLE runtime node-e=([\d.]+) neuralupgrade-version=([\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    expect(starts, b.said).toHaveLength(3);
    for (const [nodeE, version] of starts) expect(nodeE! > 0 && version! > 0, b.said).toBe(true);
    console.log(`runtime start in the guest (s): node -e 0 ${starts.map((x) => x[0]).join(' ')}; neuralupgrade --version ${starts.map((x) => x[1]).join(' ')}`);

    b = await boot('B trial, mark-good');
    expect(b.kind, b.said).toBe('done');
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE booted=B default=A version=${v2}`);
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE marked-good slot=B version=${v2}`);
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE nothing-new slot=B version=${v2}`);

    b = await boot('B stays');
    expect(b.kind, b.said).toBe('done');
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE booted=B default=B version=${v2}`);
    expect(b.log).not.toContain('marked-good');

    // v3: the same OS whose initramfs init exits, so its kernel panics
    const entries: TarEntry[] = [];
    parseTar(await readFile(builtOstar), 'ostar', (m, data) => {
      if (m.type === 'file')
        entries.push({type: 'data', path: m.path, mode: 0o644, data: m.path === 'initramfs' ? testInitramfs('v3', true) : Buffer.from(data)});
    });
    const v3tar = join(dir, 'psyopsOS-v3.tar');
    await writeTar(v3tar, entries, 1_700_000_000);
    const v3 = await publish(v3tar);

    b = await boot('B applies v3');
    expect(b.kind, b.said).toBe('applied');
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE booted=B default=B version=${v2}`);
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE applied slot=A version=${v3}`);

    await expect(boot('A v3 panics')).rejects.toThrow(/Kernel panic/);

    b = await boot('falls back to B');
    expect(b.kind, b.said).toBe('done');
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE booted=B default=B version=${v2}`);
    expect(b.log, b.said).toContain(`PSYOPSOS-CYCLE nothing-new slot=B version=${v2} latest=${v3}`);
    console.log(`boots: ${durations.join(', ')}`);
  }, 3_600_000);
});
