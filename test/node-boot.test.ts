/**
 * A node image boots and its node's secrets are what the booted system finds on
 * psyops-secret. The fixture OS has no individuation script (that is the node OS's
 * postboot script); the test overlay carries a stand-in, named as such, that mounts the
 * partition and prints the node's name and the SHA-256 of its SSH host key.
 */
import {spawnSync} from 'node:child_process';
import {createHash} from 'node:crypto';
import {mkdirSync, rmSync, writeFileSync} from 'node:fs';
import {join, relative} from 'node:path';
import {afterAll, describe, expect, it} from 'vitest';
import {bootAndWatch} from '../src/vm/boot-watch.js';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {nodeProject, type NodeProjectDir} from './helpers/node-project.js';
import {haveAlpineTestData, repoRoot} from './helpers/shared-data.js';
import {buildFixtureRepository} from './fixtures/build-fixture-repository.js';
import {fixtureSettings, writeProject} from './os-project.js';

const STAND_IN = `#!/bin/sh
# Test stand-in for the node OS's individuation script: read psyops-secret, say who we are.
mkdir -p /mnt/secret
dev=$(findfs LABEL=psyops-secret 2>/dev/null || echo /dev/vda2)
mount -t ext4 -o ro "$dev" /mnt/secret
key=$(sha256sum /mnt/secret/ssh_host_ed25519_key | cut -d' ' -f1)
echo "TEST-NODE name=$(cat /mnt/secret/nodename) mactab=$(cut -d' ' -f2 /mnt/secret/mactab) sshkey=$key" > /dev/console
sync
poweroff -f
`;

let p: NodeProjectDir | undefined;
afterAll(() => {
  if (p) rmSync(p.dir, {recursive: true, force: true});
});

describe.skipIf(!haveAlpineTestData())('node image boot', () => {
  it('diskimg@NAME boots and the node finds its own name, MAC and SSH host key on psyops-secret', async () => {
    assertBuilt();
    const fx = await buildFixtureRepository();
    p = nodeProject('psy-node-boot-');
    const settings = fixtureSettings(p.dir, fx);
    await writeProject(p.dir, settings);
    mkdirSync(join(p.dir, 'test-overlay/usr/sbin'), {recursive: true});
    writeFileSync(join(p.dir, 'test-overlay/usr/sbin/test-node-marker'), STAND_IN, {mode: 0o755});
    writeFileSync(join(p.dir, 'test-overlay/etc/inittab'), '::sysinit:/usr/sbin/test-node-marker\n');
    const targets = relative(p.dir, join(repoRoot, 'targets/psyopsos.js'));
    writeFileSync(
      join(p.dir, 'build.config.ts'),
      `import {psyopsosConfig} from '${targets}';\nexport default psyopsosConfig(${JSON.stringify(settings)}, {settings: {nodes: {recipients: ${JSON.stringify([p.operator.recipient])}}}}, {root: import.meta.dirname});\n`,
    );
    const n = await psy(['node', 'new', 'bootnode', '--mac', '52:54:00:77:00:01'], p.dir, p.env);
    expect(n.code, n.stderr).toBe(0);
    const b = await psy(['build', 'diskimg@bootnode'], p.dir, p.env);
    expect(b.code, b.stderr).toBe(0);

    const plain = spawnSync('age', ['-d', '-i', p.operator.file, join(p.dir, 'nodes/bootnode/secrets.age')]);
    const key = spawnSync('tar', ['-xO', 'ssh_host_ed25519_key'], {input: plain.stdout}).stdout;
    const image = join(p.dir, 'cache/out/x86_64/psyopsOS.x86_64-uefi.bootnode.img');
    const r = await bootAndWatch({image, accel: 'tcg', logFile: join(p.dir, 'serial.log'), marker: /TEST-NODE name=(\S+) mactab=(\S+) sshkey=(\S+)/, timeoutMs: 480_000});
    expect(r.match[1]).toBe('bootnode');
    expect(r.match[2]).toBe('52:54:00:77:00:01');
    expect(r.match[3]).toBe(createHash('sha256').update(key).digest('hex'));
  }, 1_200_000);
});
