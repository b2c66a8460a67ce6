/**
 * `psy deploy` against a real QEMU guest: a node made by `psy node new`, its image
 * (`diskimg@NAME`, v1 in slot A) booted with its SSH port forwarded to the host. The
 * guest's sshd is the offline fixture's stand-in, named as such (Debian's sshd on
 * glibc-compat: Alpine's openssh cannot be had offline); its host key is the node's, from
 * its secrets, and root logs in with the key settings.alpine.rootAuthorizedKeys names.
 * v2 is published into a replica `psy deaddrop serve`s on the host (10.0.2.2 for the
 * guest). `psy deploy NODE --reboot --wait` applies it to B over ssh, reboots the guest
 * and waits until B is up and marked good by the guest's own health hook (a test hook,
 * named as such). Then copy mode: v3's signed ostar is copied over ssh and applied with
 * --os-tar, back to A. QEMU runs with -no-reboot (OVMF loaded with -bios did not come back
 * from a warm reset under TCG): the guest's reboot ends QEMU and the test powers it on
 * again on the same disk, with the same forwarded port, while psy deploy keeps polling.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process';
import {existsSync, readFileSync, writeFileSync} from 'node:fs';
import {cp, mkdir, rm, writeFile} from 'node:fs/promises';
import {createServer} from 'node:net';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {generateSigningKey} from '../src/apk/keys.js';
import {serveReplica, type RunningServer} from '../src/deaddrop/serve.js';
import {build} from '../src/engine/build.js';
import {parseTar, writeTar, type TarEntry} from '../src/image/tar.js';
import {formatPublicKey, generateKeyPair, type KeyPair} from '../src/sign/keys.js';
import {cleanConsole} from '../src/vm/boot-watch.js';
import {QEMU, qemuArgs} from '../src/vm/qemu.js';
import {buildFixtureRepository} from './fixtures/build-fixture-repository.js';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {publishOs} from './helpers/deaddrop-fixtures.js';
import {healthHook} from './helpers/guest-hooks.js';
import {nodeProject, type NodeProjectDir} from './helpers/node-project.js';
import {haveAlpineTestData} from './helpers/shared-data.js';
import {fixtureSettings, writeProject} from './os-project.js';

const haveQemu = existsSync('/usr/bin/qemu-system-x86_64') && existsSync('/usr/share/ovmf/OVMF.fd');
const NODE = 'deploynode';
const MAC = '52:54:00:77:00:02';

function freePort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as {port: number}).port;
      s.close(() => ok(p));
    });
  });
}

interface Status {
  booted: string;
  slots: Record<string, {version?: string}>;
  nextBoot: {knownGood: string};
}

describe.skipIf(!haveAlpineTestData() || !haveQemu)('psy deploy against a QEMU guest', () => {
  let p: NodeProjectDir;
  let keys: KeyPair;
  let server: RunningServer;
  let replica: string;
  let image: string;
  let ostar: string;
  let sshPort: number;
  let qemu: ChildProcess | undefined;
  let boots = 0;
  let stopping = false;
  const serial = (n: number) => join(p.dir, `serial-${n}.log`);
  // the test's client key, and the node's recorded host key only
  const sshIdentity = () => [
    '-i',
    join(p.dir, 'client'),
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${join(p.dir, 'known_hosts')}`,
    '-o',
    'StrictHostKeyChecking=yes',
  ];
  const sshArgs = () => ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-p', String(sshPort), ...sshIdentity()];

  const publish = (path: string) => publishOs(replica, keys, path);

  /** The guest's console so far (every boot), without terminal escapes. */
  const consoleText = () => cleanConsole(Array.from({length: boots}, (_, i) => readFileSync(serial(i + 1), 'latin1')).join(''));

  /** Powers the guest on; when it reboots (QEMU exits 0 under -no-reboot) it is powered on again. */
  function powerOn(): void {
    boots++;
    writeFileSync(serial(boots), '');
    const args = qemuArgs(
      {
        image,
        snapshot: false,
        memoryMiB: 2048,
        serial: {kind: 'file', path: serial(boots)},
        noNetwork: true,
        extraArgs: ['-nic', `user,model=virtio-net-pci,mac=${MAC},hostfwd=tcp:127.0.0.1:${sshPort}-:22`],
      },
      'tcg',
    );
    const child = spawn(QEMU, args, {stdio: ['ignore', 'ignore', 'inherit']});
    qemu = child;
    child.on('exit', (code) => {
      if (!stopping && code === 0 && boots < 4) powerOn();
    });
  }

  async function waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = consoleText().match(pattern);
      if (m) return m;
      if (qemu?.exitCode !== null && qemu?.exitCode !== 0) throw new Error(`QEMU exited; console: ${consoleText().slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`no ${pattern.source} within ${timeoutMs / 1000} s; console: ${consoleText().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  beforeAll(async () => {
    assertBuilt();
    const fx = await buildFixtureRepository();
    p = nodeProject('psy-deploy-guest-');
    replica = join(p.dir, 'replica');
    await mkdir(replica);
    server = await serveReplica({root: replica, host: '127.0.0.1', port: 0});
    sshPort = await freePort();
    keys = generateKeyPair();
    await mkdir(join(p.dir, 'keys'));
    await writeFile(join(p.dir, 'keys/release.pub'), formatPublicKey(keys.publicKey));
    const kg = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator', '-f', join(p.dir, 'client')], {encoding: 'utf8'});
    if (kg.status !== 0) throw new Error(`ssh-keygen: ${kg.stderr}`);
    const key = 'keys/psy-test.rsa';
    await writeFile(join(p.dir, key), generateSigningKey('psy-test', 0x65f0a002, 2048).privateKeyPem);

    const settings = fixtureSettings(p.dir, fx, {
      world: [...fx.minirootfsWorld, 'openssh-server'],
      ownPackages: ['neuralupgrade'],
      apkBuildKey: key,
      partitions: {espMiB: 40, secretMiB: 8, slotMiB: 400},
      updatePubkey: 'keys/release.pub',
      updateRepository: `http://10.0.2.2:${new URL(server.url).port}/os`,
      rootAuthorizedKeys: ['client.pub'],
    });
    await writeProject(p.dir, settings, {
      nodeRecipients: [p.operator.recipient],
      // TCG is slow: sshd on a busy guest can take more than psy's 10 s to say hello
      nodes: {
        hosts: {[NODE]: '127.0.0.1'},
        ssh: {
          port: sshPort,
          options: ['-o', 'ConnectTimeout=60', ...sshIdentity()],
        },
      },
    });
    const d = join(p.dir, 'test-overlay/etc/psyopsOS/postboot.d');
    await mkdir(d, {recursive: true});
    await writeFile(join(d, '40-test-health'), healthHook, {mode: 0o755});
    // OpenRC's local service stands in: the postboot (network, sshd, hooks), then the guest stays up
    await writeFile(
      join(p.dir, 'test-overlay/etc/inittab'),
      "::sysinit:/bin/sh -c '/usr/sbin/psyopsos-postboot > /dev/console 2>&1; echo PSYOPSOS-UP > /dev/console'\n",
    );

    const n = await psy(['node', 'new', NODE, '--mac', MAC], p.dir, p.env);
    if (n.code !== 0) throw new Error(`psy node new: ${n.stderr}`);
    // the node's host key as the operator knows it: the public half psy node new recorded
    const pub = (JSON.parse(readFileSync(join(p.dir, 'nodes', NODE, 'node.json'), 'utf8')) as {public: {ssh: string}}).public.ssh;
    await writeFile(join(p.dir, 'known_hosts'), `[127.0.0.1]:${sshPort} ${pub.split(' ').slice(0, 2).join(' ')}\n`);

    const t0 = Date.now();
    // the sectar step reads the operator's identity from the process environment
    Object.assign(process.env, p.env);
    const r = await build({cwd: p.dir, targets: [`diskimg@${NODE}`, 'ostar'], jobs: 2});
    if (!r.ok) throw new Error(`build failed: ${JSON.stringify(r.failed)}`);
    console.log(`image build ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    image = join(p.dir, 'disk.img');
    await cp(r.outputs[`diskimg@${NODE}`]!['image']!, image);
    ostar = r.outputs['ostar']!['ostar']!;
  }, 1_800_000);

  afterAll(async () => {
    stopping = true;
    qemu?.kill('SIGKILL');
    await server?.close();
    if (p) await rm(p.dir, {recursive: true, force: true});
  });

  it('updates the guest from A to B over ssh, waits until B marked itself good; then to A by copying the ostar', async () => {
    const v2 = await publish(ostar);
    const t0 = Date.now();
    powerOn();
    const up = await waitFor(/PSYOPSOS-NODE name=(\S+) psy0=(\S+) sshkey=(\S+)/, 600_000);
    console.log(`first boot (tcg): ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    expect(up.slice(1, 3)).toEqual([NODE, MAC]);
    expect(consoleText()).toContain('psyopsos-postboot: sshd started');

    const t1 = Date.now();
    const r = await psy(['deploy', NODE, '--reboot', '--wait', '--poll', '5', '--timeout', '900', '--json'], p.dir, p.env);
    console.log(`psy deploy --reboot --wait: ${((Date.now() - t1) / 1000).toFixed(0)} s`);
    expect(r.code, `${r.stdout}\n${r.stderr}\n${consoleText().slice(-1500)}`).toBe(0);
    const j = JSON.parse(r.stdout) as {ok: boolean; nodes: Array<Record<string, unknown>>};
    expect(j.ok).toBe(true);
    expect(j.nodes).toHaveLength(1);
    expect(j.nodes[0]).toMatchObject({
      node: NODE,
      host: '127.0.0.1',
      outcome: 'updated',
      before: {slot: 'A'},
      now: {slot: 'B', version: v2},
      written: {slot: 'B', version: v2},
      error: null,
    });
    // the guest rebooted once: a second boot, and its health hook marked B good
    expect(boots).toBe(2);
    expect(consoleText().match(/PSYOPSOS-NODE /g)?.length).toBe(2);
    expect(consoleText()).toContain(`PSYOPSOS-CYCLE marked-good slot=B version=${v2}`);

    // asked directly, with the node's own host key checked
    const st = spawnSync('ssh', [...sshArgs(), 'root@127.0.0.1', 'neuralupgrade status --json > /tmp/st.json; cat /tmp/st.json'], {encoding: 'utf8'});
    expect(st.status, st.stderr).toBe(0);
    const s = JSON.parse(st.stdout) as Status;
    expect([s.booted, s.nextBoot.knownGood, s.slots['B']?.version]).toEqual(['B', 'B', v2]);

    // copy mode: the guest is not asked to download; v3's signed ostar goes over ssh
    // v3: the same OS, its tar written again with other times (an identical one publishes as no new version)
    const entries: TarEntry[] = [];
    parseTar(readFileSync(ostar), 'ostar', (m, data) => {
      if (m.type === 'file') entries.push({type: 'data', path: m.path, mode: 0o644, data: Buffer.from(data)});
    });
    await writeTar(join(p.dir, 'psyopsOS-v3.tar'), entries, 1_600_000_000);
    const v3 = await publish(join(p.dir, 'psyopsOS-v3.tar'));
    expect(v3 > v2).toBe(true);
    const v3tar = join(replica, 'os', `psyopsOS.x86_64.${v3}.tar`);
    const t2 = Date.now();
    const c = await psy(['deploy', NODE, '--copy', '--ostar', v3tar, '--reboot', '--wait', '--poll', '5', '--timeout', '900', '--json'], p.dir, p.env);
    console.log(`psy deploy --copy --reboot --wait: ${((Date.now() - t2) / 1000).toFixed(0)} s`);
    expect(c.code, `${c.stdout}\n${c.stderr}\n${consoleText().slice(-1500)}`).toBe(0);
    expect((JSON.parse(c.stdout) as {nodes: unknown[]}).nodes[0]).toMatchObject({
      outcome: 'updated',
      before: {slot: 'B', version: v2},
      now: {slot: 'A', version: v3},
      written: {slot: 'A', version: v3},
    });
    expect(boots).toBe(3);
    expect(consoleText()).toContain(`PSYOPSOS-CYCLE marked-good slot=A version=${v3}`);
  }, 2_400_000);
});
