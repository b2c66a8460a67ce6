/**
 * A psyopsOS node: the root's declared runlevels, way in and update trust (structural,
 * on the real squashfs), and the individuation from psyops-secret at boot (two real
 * QEMU boots: a per-node image and the generic one, from one built project).
 */
import {execFile} from 'node:child_process';
import {cp, mkdir, mkdtemp, open, readFile, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {promisify} from 'node:util';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {findPartition, psyopsLabels} from '../src/disk/index.js';
import {build} from '../src/engine/build.js';
import {applyNodeRoot, checkAuthorizedKeys, validateNodeRootSettings, type NodeRootSettings} from '../src/image/node-root.js';
import {parseTar} from '../src/image/tar.js';
import {formatPublicKey, generateKeyPair} from '../src/sign/keys.js';
import {bootAndWatch} from '../src/vm/boot-watch.js';
import {psyopsosConfig} from '../targets/psyopsos.js';
import {defaultRunlevels, type AlpineSettings} from '../targets/settings.js';
import {buildFixtureRepository, type FixtureRepository} from './fixtures/build-fixture-repository.js';
import {haveAlpineTestData} from './helpers/shared-data.js';
import {fixtureSettings, writeConfig, writeProject} from './os-project.js';

const run = promisify(execFile);

const NODE = 'testnode7';
const MAC = '52:54:00:12:34:56';
const nodeLine = /PSYOPSOS-NODE name=(\S+) psy0=(\S+) sshkey=(\S+) data=(\S+)/;
// printed by the test inittab once the script has run twice (the second run must only
// say that it already ran)
const done = /PSYOPSOS-TEST-DONE/;

function nodeFields(log: string): string[] {
  const lines = log.split('\n').filter((l) => nodeLine.test(l));
  expect(lines).toHaveLength(1);
  return lines[0]!.match(nodeLine)!.slice(1);
}

// The fixture world has no openrc: these init.d scripts stand in for the ones openrc,
// busybox-mdev-openrc and openssh-server would install, so the runlevels can be declared.
const standInServices = {sysinit: ['mdev'], default: ['local', 'sshd'], shutdown: ['killprocs']};

const baseNode: NodeRootSettings = {
  runlevels: {},
  rootPasswordHash: null,
  serialConsoles: ['ttyS0'],
  serialBaud: 115200,
  defaultNodename: 'psyopsOS-unconfigured',
  updateRepository: null,
};

describe('node settings are checked and derived', () => {
  it('refuses settings a user gets wrong, in one line naming the field', () => {
    const bad = (over: Partial<NodeRootSettings>) => () => validateNodeRootSettings({...baseNode, ...over});
    expect(bad({rootPasswordHash: 'hunter2'})).toThrow(/^settings\.alpine\.rootPasswordHash: must be a crypt\(3\) hash/);
    expect(bad({runlevels: {default: ['sshd', 'sshd']}})).toThrow('settings.alpine.runlevels.default: service sshd is named twice');
    expect(bad({runlevels: {default: ['../etc/passwd']}})).toThrow('"../etc/passwd" is not a service name');
    expect(bad({serialConsoles: ['ttyS0; reboot']})).toThrow('settings.alpine.serialConsoles');
    expect(bad({updateRepository: 'ftp://x/os'})).toThrow('settings.alpine.updateRepository');
    expect(bad({defaultNodename: 'no_underscores'})).toThrow('settings.alpine.defaultNodename');
    // checked when the config loads, before any step runs
    expect(() => psyopsosConfig({rootPasswordHash: 'plain-text'})).toThrow(/^settings\.alpine\.rootPasswordHash: /);
  });

  it('takes only public keys for root', () => {
    expect(checkAuthorizedKeys('k.pub', '# ops\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDRYLsPPElw5QjK9u7fbk4TI5HsvtcPSkL++v2tXDWQe op@x\n')).toHaveLength(1);
    expect(() => checkAuthorizedKeys('id_ed25519', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n')).toThrow(
      'settings.alpine.rootAuthorizedKeys: id_ed25519 holds a private key, not public keys',
    );
    expect(() => checkAuthorizedKeys('k.pub', 'ssh-ed25519 AAAAC3Nz op\nnot a key\n')).toThrow('k.pub line 2 is not an SSH public key');
  });

  it('a missing service is named with the package that usually provides it, and nothing is written', async () => {
    const root = await mkdtemp(join(tmpdir(), 'psy-node-root-'));
    try {
      await mkdir(join(root, 'etc/init.d'), {recursive: true});
      await writeFile(join(root, 'etc/init.d/local'), '#!/sbin/openrc-run\n');
      const err = (await applyNodeRoot(root, {...baseNode, runlevels: {default: ['local', 'sshd']}}, {authorizedKeys: []}).catch((e: unknown) => e)) as Error;
      expect(err.message).toBe(
        'settings.alpine.runlevels.default: service sshd has no /etc/init.d/sshd in the installed world (it usually comes from openssh-server: add that to settings.alpine.world)',
      );
      await expect(readFile(join(root, 'etc/hostname'))).rejects.toThrow();
    } finally {
      await rm(root, {recursive: true, force: true});
    }
  });

  it('the update trust comes from settings.signing and settings.deaddrop unless set', () => {
    const cfg = psyopsosConfig(
      {},
      {settings: {signing: {publicKey: 'keys/release.pub'}, deaddrop: {s3: {bucket: 'drop', prefix: 'psy/', publicUrl: 'https://drop.example.org/'}}}},
    );
    const alpine = cfg.settings!['alpine'] as unknown as AlpineSettings;
    expect(alpine.updatePubkey).toBe('keys/release.pub');
    expect(alpine.updateRepository).toBe('https://drop.example.org/psy/os');
    expect(alpine.runlevels).toEqual(defaultRunlevels);
    expect(alpine.rootPasswordHash).toBeNull();
    const none = psyopsosConfig({}).settings!['alpine'] as unknown as AlpineSettings;
    expect([none.updatePubkey, none.updateRepository]).toEqual([null, null]);
  });
});

describe.skipIf(!haveAlpineTestData())('a psyopsOS node built from the fixture repository', () => {
  let fx: FixtureRepository;
  let dir: string;
  let settings: Partial<AlpineSettings>;
  let squashfs: string;
  let esptar: string;
  let nodeImage: string;
  let genericImage: string;
  let hostKeyFingerprint: string;
  let missingServiceError: string;
  const operatorKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDRYLsPPElw5QjK9u7fbk4TI5HsvtcPSkL++v2tXDWQe operator@test';
  let passwordHash: string;

  beforeAll(async () => {
    fx = await buildFixtureRepository();
    dir = await mkdtemp(join(tmpdir(), 'psy-node-'));
    passwordHash = (await run('openssl', ['passwd', '-6', '-salt', 'psytest', 'not-a-real-password'])).stdout.trim();
    // the node's secrets, as an operator makes them (no .pub: the boot derives it)
    await mkdir(join(dir, 'secrets'), {recursive: true});
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${NODE}`, '-f', join(dir, 'secrets/ssh_host_ed25519_key')]);
    const {stdout} = await run('ssh-keygen', ['-l', '-f', join(dir, 'secrets/ssh_host_ed25519_key.pub')]);
    hostKeyFingerprint = stdout.split(' ')[1]!;
    await rm(join(dir, 'secrets/ssh_host_ed25519_key.pub'));
    await writeFile(join(dir, 'secrets/nodename'), `${NODE}\n`);
    await writeFile(join(dir, 'secrets/mactab'), `psy0 ${MAC}\n`);
    await writeFile(join(dir, 'secrets/network.interfaces'), 'auto lo\niface lo inet loopback\n\nauto psy0\niface psy0 inet dhcp\n');
    await mkdir(join(dir, 'keys'));
    await writeFile(join(dir, 'keys/operator.pub'), operatorKey + '\n');
    await writeFile(join(dir, 'keys/release.pub'), formatPublicKey(generateKeyPair().publicKey));

    // The test overlay: init.d stand-ins, hooks, and an inittab that does what OpenRC's
    // local service does on a real node (runs the script; twice, to see the guard).
    const ov = join(dir, 'test-overlay/etc');
    await mkdir(join(ov, 'init.d'), {recursive: true});
    for (const svc of Object.values(standInServices).flat()) {
      await writeFile(join(ov, 'init.d', svc), `#!/sbin/openrc-run\n# stand-in for Alpine's ${svc} service (the fixture world has no openrc)\n`, {mode: 0o755});
    }
    await mkdir(join(ov, 'psyopsOS/postboot.d'), {recursive: true});
    await writeFile(join(ov, 'psyopsOS/postboot.d/10-fails'), '#!/bin/sh\necho "this hook fails"\nexit 3\n', {mode: 0o755});
    await writeFile(join(ov, 'psyopsOS/postboot.d/15-not-executable'), '#!/bin/sh\necho "PSYOPSOS-WRONG not executable but ran"\n', {mode: 0o644});
    await writeFile(
      join(ov, 'psyopsOS/postboot.d/20-report'),
      [
        '#!/bin/sh',
        'echo "PSYOPSOS-HOSTNAME $(hostname) node=$PSYOPSOS_NODENAME secret=$PSYOPSOS_SECRET_DIR data=$PSYOPSOS_DATA_DIR"',
        'echo "PSYOPSOS-MODES parent=$(stat -c %a /mnt/psyops-secret) key=$(stat -c %a /etc/ssh/ssh_host_ed25519_key 2>/dev/null) secret-mount=$(awk \'$2 == "/mnt/psyops-secret/mount" { split($4, o, ","); print o[1] }\' /proc/mounts)"',
        'echo "PSYOPSOS-NET $(ip -4 -o addr show dev psy0 2>/dev/null | awk \'{ print $4 }\')"',
        'echo "PSYOPSOS-ADDRS $(ip -4 -o addr show | awk \'$2 != "lo" { printf "%s=%s ", $2, $4 }\')"',
        '[ -n "$PSYOPSOS_DATA_DIR" ] && echo "$PSYOPSOS_NODENAME" > "$PSYOPSOS_DATA_DIR/node-was-here"',
        'exit 0',
        '',
      ].join('\n'),
      {mode: 0o755},
    );

    settings = fixtureSettings(dir, fx, {
      node: {name: NODE, secretsDir: 'secrets', mac: MAC},
      runlevels: standInServices,
      rootPasswordHash: passwordHash,
      rootAuthorizedKeys: ['keys/operator.pub'],
      updatePubkey: 'keys/release.pub',
      updateRepository: 'https://deaddrop.example.org/os',
    });
    // writeProject writes the slot-marker inittab; the node test's replaces it below
    await writeProject(dir, {...settings, runlevels: defaultRunlevels});
    await writeFile(
      join(ov, 'inittab'),
      "::sysinit:/bin/sh -c '/usr/sbin/psyopsos-postboot > /dev/console 2>&1; /usr/sbin/psyopsos-postboot > /dev/console 2>&1; sync; echo PSYOPSOS-TEST-DONE > /dev/console; poweroff -f'\n",
    );

    // the original's runlevels against a world without openrc: refused in one line
    const refused = await build({cwd: dir, targets: ['squashfs'], jobs: 2});
    expect(refused.ok).toBe(false);
    missingServiceError = refused.failed[0]?.message ?? '';

    await writeConfig(dir, settings);
    const t0 = Date.now();
    const r = await build({cwd: dir, targets: ['diskimg'], jobs: 2});
    if (!r.ok) throw new Error(`build failed: ${JSON.stringify(r.failed)}`);
    console.log(`node image build ${((Date.now() - t0) / 1000).toFixed(1)} s, ran: ${r.ran.join(' ')}`);
    squashfs = r.outputs['squashfs']!['squashfs']!;
    esptar = r.outputs['esptar']!['esptar']!;
    nodeImage = join(dir, 'node.img');
    await cp(r.outputs['diskimg']!['image']!, nodeImage);

    const {node: _node, ...generic} = settings;
    await writeConfig(dir, generic);
    const g = await build({cwd: dir, targets: ['diskimg'], jobs: 2});
    if (!g.ok) throw new Error(`generic build failed: ${JSON.stringify(g.failed)}`);
    expect(g.ran).toEqual(['diskimg']);
    genericImage = g.outputs['diskimg']!['image']!;
    expect(genericImage).toMatch(/\.generic\.img$/);
  }, 900_000);
  afterAll(async () => {
    if (dir) await rm(dir, {recursive: true, force: true});
  });

  async function cat(path: string): Promise<string> {
    return (await run('unsquashfs', ['-cat', squashfs, path], {maxBuffer: 1 << 20})).stdout;
  }

  it('the runlevel tree of the built root is exactly the declared one, linked as rc-update links', async () => {
    const {stdout} = await run('unsquashfs', ['-lln', squashfs, 'etc/runlevels'], {maxBuffer: 1 << 24});
    const tree: Record<string, string[]> = {};
    for (const line of stdout.split('\n')) {
      const m = line.match(/^(\S)\S+ \S+ +\d+ \S+ \S+ squashfs-root\/etc\/runlevels\/([^/\s]+)(?:\/(\S+) -> (\S+))?$/);
      if (!m) continue;
      const [, type, level, svc, target] = m;
      tree[level!] ??= [];
      if (svc) {
        expect(type).toBe('l');
        expect(target).toBe(`/etc/init.d/${svc}`);
        tree[level!]!.push(svc);
      }
    }
    const sorted = (o: Record<string, readonly string[]>) =>
      Object.fromEntries(
        Object.entries(o)
          .map(([k, v]) => [k, [...v].sort()])
          .sort(),
      );
    expect(sorted(tree)).toEqual(sorted(standInServices));
  });

  it('refuses a declared service the installed world lacks, in one line naming it and its package', () => {
    expect(missingServiceError).toBe(
      'settings.alpine.runlevels.sysinit: service devfs has no /etc/init.d/devfs in the installed world (it usually comes from openrc: add that to settings.alpine.world)',
    );
  });

  it('the root holds the way in and the update trust as configured, nothing else secret', async () => {
    expect((await cat('etc/shadow')).split('\n')[0]).toBe(`root:${passwordHash}::0:::::`);
    expect(await cat('root/.ssh/authorized_keys')).toBe(operatorKey + '\n');
    expect(await cat('etc/psyopsOS/minisign.pubkey')).toBe(await readFile(join(dir, 'keys/release.pub'), 'utf8'));
    expect(await cat('etc/psyopsOS/repository')).toBe('https://deaddrop.example.org/os\n');
    expect(await cat('etc/hostname')).toBe('psyopsOS-unconfigured\n');
    const {stdout} = await run('unsquashfs', ['-lln', squashfs], {maxBuffer: 1 << 26});
    const mode = (p: string) =>
      stdout
        .split('\n')
        .find((l) => l.endsWith(` squashfs-root/${p}`))
        ?.split(/\s+/)
        .slice(0, 2)
        .join(' ');
    expect(mode('root/.ssh')).toBe('drwx------ 0/0');
    expect(mode('root/.ssh/authorized_keys')).toBe('-rw------- 0/0');
    expect(mode('usr/sbin/psyopsos-postboot')).toBe('-rwxr-xr-x 0/0');
    expect(mode('etc/local.d/100-psyopsos-postboot.start')).toBe('-rwxr-xr-x 0/0');
    // the node's own secrets live only on its psyops-secret partition
    expect(stdout).not.toMatch(/ssh_host_|mactab|nodename/);
  });

  it("Debian's memtest86+ is the default EFI extra, listed after A and B on video and serial", async () => {
    const files = new Map<string, Buffer>();
    parseTar(await readFile(esptar), 'esptar', (m, d) => files.set(m.path, Buffer.from(d)));
    const memtest = [...files.keys()].find((n) => /^grub-[0-9a-f]+\/memtest64\.efi$/.test(n));
    expect(memtest).toBeDefined();
    expect(files.get(memtest!)!.equals(await readFile('/boot/memtest86+x64.efi'))).toBe(true);
    expect(JSON.parse(files.get('manifest.json')!.toString())).toEqual({version: 1, extra_programs: {'memtest64.efi': 'MemTest86+ (64-bit EFI)'}});
    const cfg = [...files.entries()].find(([n]) => n.endsWith('/grub.cfg'))![1].toString();
    expect(cfg).toContain('terminal_output console serial');
    const entries = [...cfg.matchAll(/^menuentry '([^']+)'/gm)].map((m) => m[1]);
    expect(entries.slice(0, 3)).toEqual(['psyopsOS-A', 'psyopsOS-B', 'MemTest86+ (64-bit EFI)']);
    expect(cfg).toMatch(/chainloader \$prefix\/memtest64\.efi/);
  });

  it('the per-node image boots as its node: name, psy0 with its MAC, its SSH key, its data partition, hooks in order', async () => {
    const data = join(dir, 'data.img');
    await run('truncate', ['-s', '16M', data]);
    await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'psyopsos-data', data]);
    const b = await bootAndWatch({
      image: nodeImage,
      accel: 'tcg',
      mac: MAC,
      extraArgs: ['-drive', `file=${data},format=raw,if=virtio`],
      logFile: join(dir, 'serial-node.log'),
      marker: done,
      timeoutMs: 420_000,
    });
    const log = b.log;
    console.log(`node boot: ${b.seconds.toFixed(1)} s: ${log.split('\n').find((l) => nodeLine.test(l))}`);
    expect(nodeFields(log)).toEqual([NODE, MAC, hostKeyFingerprint, 'yes']);
    expect(log).toContain('already ran this boot');
    expect(log).toContain(`PSYOPSOS-HOSTNAME ${NODE} node=${NODE} secret=/mnt/psyops-secret/mount data=/psyopsos-data`);
    expect(log).toContain('PSYOPSOS-MODES parent=700 key=600 secret-mount=ro');
    expect(log).toMatch(/PSYOPSOS-NET 10\.0\.2\.\d+\/24/);
    expect(log).toMatch(/renamed eth\d \(52:54:00:12:34:56\) to psy0/);
    expect(log).toContain('hook 10-fails failed (exit 3)');
    expect(log.indexOf('this hook fails')).toBeLessThan(log.indexOf('PSYOPSOS-HOSTNAME'));
    expect(log).not.toContain('PSYOPSOS-WRONG');
    expect((await run('debugfs', ['-R', 'cat /node-was-here', data])).stdout).toBe(`${NODE}\n`);
  }, 600_000);

  it('the generic image, without a psyops-secret filesystem, boots as the unconfigured node: no psy0, DHCP on every NIC', async () => {
    // The generic image's psyops-secret partition is empty; with its ext4 magic gone
    // there is no filesystem labelled psyops-secret at all (a node without its stick).
    const image = join(dir, 'generic.img');
    await cp(genericImage, image);
    const secret = await findPartition(image, psyopsLabels.secret);
    const fh = await open(image, 'r+');
    await fh.write(Buffer.alloc(2), 0, 2, secret.offset + 1024 + 56);
    await fh.close();
    const b = await bootAndWatch({image, accel: 'tcg', noNetwork: false, logFile: join(dir, 'serial-generic.log'), marker: done, timeoutMs: 420_000});
    console.log(`generic boot: ${b.seconds.toFixed(1)} s: ${b.log.split('\n').find((l) => nodeLine.test(l))}`);
    expect(nodeFields(b.log)).toEqual(['psyopsOS-unconfigured', 'none', 'none', 'no']);
    expect(b.log).toContain('no psyops-secret partition: generic node psyopsOS-unconfigured, DHCP on every NIC');
    expect(b.log).toContain('network: DHCP on eth0');
    expect(b.log).toMatch(/PSYOPSOS-ADDRS eth0=10\.0\.2\.\d+\/24/);
    expect(b.log).toContain('PSYOPSOS-HOSTNAME psyopsOS-unconfigured node=psyopsOS-unconfigured secret= data=');
  }, 600_000);
});
