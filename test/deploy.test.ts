/**
 * psy deploy's own logic against a real OpenSSH server on 127.0.0.1 (Debian's sshd,
 * started here on a free port with a throwaway host key and client key). What runs on
 * the "nodes" is a stand-in, named as such: a shell script answering as neuralupgrade
 * does (status/apply JSON) and a `reboot` that switches its recorded slot, one state
 * folder per node alias. It proves the ssh invocation, the waves, stopping at the first
 * failing wave, the report, --dry-run and --json, and copy mode (the ostar and its
 * signature copied over ssh, applied with --os-tar); it does not prove that a node updates
 * (test/deploy-guest.test.ts does, in a QEMU guest).
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process';
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs';
import {createServer} from 'node:net';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest';
import {hostOf, planWaves} from '../src/node/deploy.js';
import {parseNodeSettings} from '../src/node/settings.js';
import type {NodeRecord} from '../src/node/store.js';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

// The stand-in neuralupgrade: state in $STATE_ROOT/$FAKE_NODE/{booted,A,B,default,next,mode,log}.
const FAKE_NEURALUPGRADE = `#!/bin/sh
d="$STATE_ROOT/$FAKE_NODE"
echo "$*" >> "$d/log"
booted=$(cat "$d/booted"); def=$(cat "$d/default"); next=$(cat "$d/next"); mode=$(cat "$d/mode")
[ "$booted" = A ] && other=B || other=A
case "$1" in
status)
  boots=\${next:-$def}
  printf '{"booted":"%s","slots":{"A":{"version":"%s"},"B":{"version":"%s"}},"nextBoot":{"boots":"%s","knownGood":"%s"}}\\n' "$booted" "$(cat "$d/A")" "$(cat "$d/B")" "$boots" "$def" ;;
apply)
  [ "$mode" = fail-apply ] && { echo "neuralupgrade apply: psyopsOS.tar.minisig: bad signature" >&2; exit 1; }
  if [ "$3" = --os-tar ]; then
    [ -f "$4" ] && [ -f "$4.minisig" ] || { echo "neuralupgrade apply: $4: no tarball with its signature" >&2; exit 1; }
    cp "$4" "$d/$other"
  else
    cp "$STATE_ROOT/latest" "$d/$other"
  fi
  echo "$other" > "$d/next"
  printf '{"slots":[{"slot":"%s","version":"%s"}],"esp":null,"tryOnce":"%s"}\\n' "$other" "$(cat "$d/$other")" "$other" ;;
*) echo "unexpected: $*" >&2; exit 2 ;;
esac
`;
// The stand-in reboot: boots the pending slot (or falls back), and marks it good unless told not to.
const FAKE_REBOOT = `#!/bin/sh
d="$STATE_ROOT/$FAKE_NODE"
echo "reboot" >> "$d/log"
next=$(cat "$d/next"); mode=$(cat "$d/mode")
echo > "$d/next"
[ -z "$next" ] && exit 0
[ "$mode" = fallback ] && exit 0
echo "$next" > "$d/booted"
[ "$mode" = never-good ] || echo "$next" > "$d/default"
`;

let dir: string;
let sshd: ChildProcess | undefined;
let port = 0;
const state = () => join(dir, 'state');

function freePort(): Promise<number> {
  return new Promise((ok) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as {port: number}).port;
      s.close(() => ok(p));
    });
  });
}

beforeAll(async () => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'psy-deploy-'));
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, {encoding: 'utf8'});
    if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  };
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'hostkey')]);
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')), {mode: 0o600});
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin/neuralupgrade'), FAKE_NEURALUPGRADE, {mode: 0o755});
  writeFileSync(join(dir, 'bin/reboot'), FAKE_REBOOT, {mode: 0o755});
  // sshd's privilege-separation folder (Debian's package makes it at service start)
  mkdirSync('/run/sshd', {recursive: true, mode: 0o755});
  port = await freePort();
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'hostkey')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'AcceptEnv FAKE_NODE',
      `SetEnv PATH=${join(dir, 'bin')}:/usr/bin:/bin STATE_ROOT=${state()}`,
      '',
    ].join('\n'),
  );
  // the client side: one Host alias per node, telling the stand-in which node it is
  const hostPub = readFileSync(join(dir, 'hostkey.pub'), 'utf8').trim();
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub}\n`);
  writeFileSync(
    join(dir, 'ssh_config'),
    [...NODES, 'z-dead']
      .map((n) =>
        [
          `Host ${n}`,
          '  HostName 127.0.0.1',
          `  Port ${n === 'z-dead' ? 1 : port}`,
          `  IdentityFile ${join(dir, 'client')}`,
          `  UserKnownHostsFile ${join(dir, 'known_hosts')}`,
          '  StrictHostKeyChecking yes',
          `  SetEnv FAKE_NODE=${n}`,
          '',
        ].join('\n'),
      )
      .join('\n'),
  );
  sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], {stdio: ['ignore', 'ignore', 'pipe']});
  for (let i = 0; i < 50; i++) {
    const r = spawnSync('ssh', ['-F', join(dir, 'ssh_config'), '-o', 'BatchMode=yes', 'n1', 'true']);
    if (r.status === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  writeFileSync(
    join(dir, 'build.config.ts'),
    `export default {targets: [], settings: {nodes: {recipients: [], ssh: {options: ['-F', ${JSON.stringify(join(dir, 'ssh_config'))}]}, hosts: {${[...NODES, 'z-dead'].map((n) => `'${n}': '${n}'`).join(', ')}}}}};\n`,
  );
  // node records: only the public file matters to deploy
  for (const [i, n] of [...NODES, 'z-dead'].entries()) {
    mkdirSync(join(dir, 'nodes', n), {recursive: true});
    writeFileSync(
      join(dir, 'nodes', n, 'node.json'),
      JSON.stringify({
        name: n,
        mac: `52:54:00:00:00:0${i}`,
        public: {
          ssh: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP/qIGyDkq2W4Juz3g7Lk2lY8EqfdZdhJaqVZdflq7Af root@x',
          age: 'age16y6whv8aan0s03uh3ts0ets4wn5l4jfuudtegcxmd75x94m3cd9q8pxjnu',
        },
      }),
    );
  }
}, 60_000);

afterAll(() => {
  sshd?.kill();
  rmSync(dir, {recursive: true, force: true});
});

function resetNodes(modes: Record<string, string> = {}): void {
  rmSync(state(), {recursive: true, force: true});
  mkdirSync(state());
  writeFileSync(join(state(), 'latest'), '2.0\n');
  for (const n of NODES) {
    const d = join(state(), n);
    mkdirSync(d);
    for (const [f, v] of Object.entries({booted: 'A', A: '1.0', B: '0.9', default: 'A', next: '', mode: modes[n] ?? 'ok', log: ''}))
      writeFileSync(join(d, f), v ? `${v}\n` : '');
    chmodSync(d, 0o777);
  }
}

const log = (n: string) => readFileSync(join(state(), n, 'log'), 'utf8');

beforeEach(() => resetNodes());

describe('psy deploy', () => {
  it('plans waves from counts and shares', () => {
    expect(planWaves(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], '1,25%,100%')).toEqual([['a'], ['b'], ['c', 'd', 'e', 'f', 'g', 'h']]);
    expect(planWaves(['a', 'b'], '1,25%,100%')).toEqual([['a'], ['b']]);
    expect(planWaves(['a', 'b', 'c'], undefined)).toEqual([['a', 'b', 'c']]);
    expect(() => planWaves(['a', 'b'], '1')).toThrow(/covers 1 of 2 nodes; end with 100%/);
    expect(() => planWaves(['a'], '1,x')).toThrow(/'x' is neither a count nor a percentage/);
    expect(() => planWaves(['a'], '150%')).toThrow(/more than 100%/);
  });

  it('reaches a node at settings.nodes.hosts, else at its psynet address', () => {
    const rec = (psynet?: {ip: string; groups: string[]}): NodeRecord => ({
      name: 'n',
      mac: '52:54:00:00:00:01',
      ...(psynet ? {psynet} : {}),
      public: {ssh: 'ssh-ed25519 AAAA', age: 'age1x'},
    });
    expect(hostOf(rec({ip: '10.10.10.5/22', groups: []}), parseNodeSettings({}))).toBe('10.10.10.5');
    expect(hostOf(rec({ip: '10.10.10.5/22', groups: []}), parseNodeSettings({hosts: {n: 'n.example.net'}}))).toBe('n.example.net');
    expect(() => hostOf(rec(), parseNodeSettings({}))).toThrow("node 'n' has no host: set settings.nodes.hosts.n or give it a psynet address");
  });

  it('updates nodes over ssh, reboots them and waits until they marked the new slot good', async () => {
    const r = await psy(['deploy', 'n1', 'n2', '--reboot', '--wait', '--poll', '0.2', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {ok: boolean; failedWave: null; nodes: Array<Record<string, unknown>>};
    expect(j.ok).toBe(true);
    expect(j.nodes).toEqual(
      ['n1', 'n2'].map((node) => ({
        node,
        host: node,
        wave: 1,
        outcome: 'updated',
        before: {slot: 'A', version: '1.0'},
        now: {slot: 'B', version: '2.0'},
        written: {slot: 'B', version: '2.0'},
        error: null,
      })),
    );
    // what ran on the node, in order
    const lines = log('n1').trim().split('\n');
    expect(lines.slice(0, 3)).toEqual(['status --json', 'apply nonbooted --os-version latest --json', 'reboot']);
    expect(lines.slice(3).every((l) => l === 'status --json')).toBe(true);
    expect(log('n3')).toBe('');

    resetNodes();
    const text = await psy(['deploy', 'n1', '--reboot', '--wait', '--poll', '0.2'], dir);
    expect(text.stdout).toBe('n1: updated 1.0 (A) -> 2.0 (B), marked good\n');
  });

  it('without --reboot only writes the other slot', async () => {
    const r = await psy(['deploy', 'n1'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('n1: B has 2.0; still running 1.0 (A) until it reboots\n');
    expect(log('n1')).toBe('status --json\napply nonbooted --os-version latest --json\n');
  });

  it('stops at the first failing wave and says which nodes were left on which version', async () => {
    resetNodes({n2: 'fail-apply'});
    const r = await psy(['deploy', '--all', '--waves', '1,25%,100%', '--reboot', '--wait', '--poll', '0.2'], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      [
        'n1: updated 1.0 (A) -> 2.0 (B), marked good',
        'n2: FAILED in wave 2, on 1.0 (A): neuralupgrade apply failed (exit 1): neuralupgrade apply: psyopsOS.tar.minisig: bad signature',
        'n3: not attempted (wave 3), left on 1.0 (A)',
        'n4: not attempted (wave 3), left on 1.0 (A)',
        'n5: not attempted (wave 3), left on 1.0 (A)',
        'z-dead: not attempted (wave 3), left on unknown [neuralupgrade status: ssh could not reach the node (ssh: connect to host 127.0.0.1 port 1: Connection refused)]',
        'deploy stopped at wave 2 of 3',
        '',
      ].join('\n'),
    );
    for (const n of ['n3', 'n4', 'n5']) expect(log(n)).toBe('status --json\n');
  });

  it('reports a node that fell back to its old slot, and one that never marks itself good', async () => {
    resetNodes({n1: 'fallback', n2: 'never-good'});
    const r = await psy(['deploy', 'n1', 'n2', '--reboot', '--wait', '--poll', '0.2', '--timeout', '2', '--json'], dir);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as {ok: boolean; failedWave: number; nodes: Array<{node: string; outcome: string; error: string; now: unknown}>};
    expect(j.failedWave).toBe(1);
    expect(j.nodes[0]).toMatchObject({
      node: 'n1',
      outcome: 'failed',
      now: {slot: 'A', version: '1.0'},
      error: 'came back on A (1.0): the boot of B failed and the node fell back',
    });
    expect(j.nodes[1]).toMatchObject({
      node: 'n2',
      outcome: 'failed',
      now: {slot: 'B', version: '2.0'},
      error: 'not up and marked good on B after 2 s (up on B but not marked good yet)',
    });
  });

  it('--dry-run prints the plan and connects to nothing', async () => {
    const r = await psy(['deploy', 'n1', 'n2', 'n3', '--waves', '1,100%', '--reboot', '--dry-run'], dir);
    expect(r.code, r.stderr).toBe(0);
    const cfg = join(dir, 'ssh_config');
    expect(r.stdout).toBe(
      [
        'wave 1: n1',
        `  n1: ssh -F ${cfg} -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=2 -l root -- n1 neuralupgrade apply nonbooted --os-version latest --json, then reboot`,
        'wave 2: n2, n3',
        `  n2: ssh -F ${cfg} -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=2 -l root -- n2 neuralupgrade apply nonbooted --os-version latest --json, then reboot`,
        `  n3: ssh -F ${cfg} -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=2 -l root -- n3 neuralupgrade apply nonbooted --os-version latest --json, then reboot`,
        '',
      ].join('\n'),
    );
    const j = JSON.parse((await psy(['deploy', 'n1', '--dry-run', '--json', '--wait'], dir)).stdout) as {
      dryRun: boolean;
      wait: boolean;
      waves: Array<{nodes: Array<{ssh: string[]}>}>;
    };
    expect(j.dryRun).toBe(true);
    expect(j.wait).toBe(true);
    expect(j.waves[0]!.nodes[0]!.ssh.slice(-3)).toEqual(['--', 'n1', 'neuralupgrade apply nonbooted --os-version latest --json']);
    for (const n of NODES) expect(log(n)).toBe('');
  });

  it('refuses mistakes with one line', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'psy-nobin-'));
    try {
      const cases: Array<[string[], Record<string, string>, RegExp]> = [
        [['deploy', 'nope'], {}, /^psy deploy: unknown node 'nope' \(no nodes\/nope\/node\.json; nodes: n1, n2, n3, n4, n5, z-dead\)\n$/],
        [['deploy'], {}, /^psy deploy: name the nodes to deploy, or --all/],
        [['deploy', 'n1', '--all'], {}, /^psy deploy: give node names or --all, not both\n$/],
        [['deploy', '--all', '--waves', '1,50%'], {}, /^psy deploy: --waves 1,50% covers 3 of 6 nodes; end with 100%\n$/],
        [['deploy', 'n1', '--timeout', 'soon'], {}, /^psy deploy: --timeout soon: give a number of seconds\n$/],
        [['deploy', 'n1'], {PATH: bin}, /^psy deploy: ssh not found on PATH: install the Debian package openssh-client \(apt-get install openssh-client\)\n$/],
      ];
      for (const [args, env, pattern] of cases) {
        const r = await psy(args, dir, env);
        expect(r.code, args.join(' ')).not.toBe(0);
        expect(r.stderr).toMatch(pattern);
      }
      // a node without a host: settings.nodes.hosts lacks it and it has no psynet address
      writeFileSync(join(dir, 'b.config.ts'), readFileSync(join(dir, 'build.config.ts'), 'utf8').replace(/hosts: \{[^}]*\}/, 'hosts: {}'));
      const nh = await psy(['deploy', 'n1', '--config', 'b.config.ts'], dir);
      expect(nh.stderr).toBe("psy deploy: node 'n1' has no host: set settings.nodes.hosts.n1 or give it a psynet address\n");
      for (const n of NODES) expect(log(n)).toBe('');
    } finally {
      rmSync(bin, {recursive: true, force: true});
    }
    expect(existsSync(join(dir, 'nodes/n1/node.json'))).toBe(true);
  });
});

describe('psy deploy: copy mode', () => {
  const V = '20260101-000000';
  const tarName = `psyopsOS.x86_64.${V}.tar`;
  const remoteTar = /^apply nonbooted --os-tar (\/tmp\/psy-deploy\.[A-Za-z0-9]{6})\/psyopsOS\.x86_64\.20260101-000000\.tar --json$/;

  beforeAll(() => {
    // a replica as psy publish leaves it: the tarball, its signature, the latest link
    const os = join(dir, 'dd', 'os');
    mkdirSync(os, {recursive: true});
    writeFileSync(join(os, tarName), '3.0\n');
    writeFileSync(join(os, `${tarName}.minisig`), 'untrusted comment: stand-in signature\n');
    rmSync(join(os, 'psyopsOS.x86_64.latest.tar.minisig'), {force: true});
    symlinkSync(`${tarName}.minisig`, join(os, 'psyopsOS.x86_64.latest.tar.minisig'));
    // nodes n2 cannot reach the bucket; the replica is settings.deaddrop's
    writeFileSync(
      join(dir, 'copy.config.ts'),
      readFileSync(join(dir, 'build.config.ts'), 'utf8').replace(
        'settings: {nodes: {recipients: []',
        "settings: {deaddrop: {root: 'dd', ostar: {target: 'ostar', arch: 'x86_64'}}, nodes: {copy: ['n2'], recipients: []",
      ),
    );
    mkdirSync(join(dir, 'mine'), {recursive: true});
    writeFileSync(join(dir, 'mine', 'os.tar'), '4.0\n');
    writeFileSync(join(dir, 'mine', 'os.tar.minisig'), 'untrusted comment: stand-in signature\n');
    writeFileSync(join(dir, 'mine', 'unsigned.tar'), '5.0\n');
  });

  it('--copy copies the latest ostar of the replica and its signature, applies it with --os-tar, and removes the copy', async () => {
    const r = await psy(['deploy', 'n1', '--copy', '--reboot', '--wait', '--poll', '0.2', '--json', '--config', 'copy.config.ts'], dir);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {nodes: Array<Record<string, unknown>>};
    expect(j.nodes).toEqual([
      {
        node: 'n1',
        host: 'n1',
        wave: 1,
        outcome: 'updated',
        before: {slot: 'A', version: '1.0'},
        now: {slot: 'B', version: '3.0'},
        written: {slot: 'B', version: '3.0'},
        error: null,
      },
    ]);
    const lines = log('n1').trim().split('\n');
    expect(lines[0]).toBe('status --json');
    const m = remoteTar.exec(lines[1]!);
    expect(m, lines[1]).not.toBeNull();
    expect(lines[2]).toBe('reboot');
    // the node is this machine: the copy's folder is gone
    expect(existsSync(m![1]!)).toBe(false);
  });

  it('copies to the nodes settings.nodes.copy lists and lets the others download; --ostar names the file', async () => {
    const r = await psy(['deploy', 'n1', 'n2', '--config', 'copy.config.ts'], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('n1: B has 2.0; still running 1.0 (A) until it reboots\nn2: B has 3.0; still running 1.0 (A) until it reboots\n');
    expect(log('n1')).toBe('status --json\napply nonbooted --os-version latest --json\n');
    expect(log('n2').split('\n')[1]).toMatch(remoteTar);

    resetNodes();
    const o = await psy(['deploy', 'n3', '--copy', '--ostar', 'mine/os.tar'], dir);
    expect(o.code, o.stderr).toBe(0);
    expect(o.stdout).toBe('n3: B has 4.0; still running 1.0 (A) until it reboots\n');
    expect(log('n3').split('\n')[1]).toMatch(/^apply nonbooted --os-tar \/tmp\/psy-deploy\.[A-Za-z0-9]{6}\/os\.tar --json$/);
  });

  it('--dry-run shows the copy; mistakes are one line and reach no node', async () => {
    // the default replica, cache/deaddrop, holds nothing yet
    writeFileSync(join(dir, 'empty-dd.config.ts'), readFileSync(join(dir, 'copy.config.ts'), 'utf8').replace("root: 'dd', ", ''));
    const d = await psy(['deploy', 'n2', '--dry-run', '--config', 'copy.config.ts'], dir);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(
      new RegExp(
        `^wave 1: n2\\n  n2: copy ${join(dir, 'dd', 'os', tarName).replace(/\./g, '\\.')} and its \\.minisig to n2:/tmp/psy-deploy\\.XXXXXX/, then ssh .* -- n2 neuralupgrade apply nonbooted --os-tar /tmp/psy-deploy\\.XXXXXX/${tarName.replace(/\./g, '\\.')} --json\\n$`,
      ),
    );
    const cases: Array<[string[], string]> = [
      [['deploy', 'n1', '--copy', '--ostar', 'mine/nope.tar'], 'psy deploy: --ostar mine/nope.tar: no such file\n'],
      [
        ['deploy', 'n1', '--copy', '--ostar', 'mine/unsigned.tar'],
        'psy deploy: --ostar mine/unsigned.tar: no mine/unsigned.tar.minisig beside it (the node verifies the tarball against it)\n',
      ],
      [['deploy', 'n1', '--ostar', 'mine/os.tar'], 'psy deploy: --ostar is the file to copy: give --copy too (or list the nodes in settings.nodes.copy)\n'],
      [['deploy', 'n1', '--copy'], 'psy deploy: settings.deaddrop.ostar names no OS tarball: give the one to copy with --ostar FILE\n'],
      [
        ['deploy', 'n1', '--copy', '--config', 'empty-dd.config.ts'],
        `psy deploy: the deaddrop replica ${join(dir, 'cache', 'deaddrop', 'os')} has no signed psyopsOS.x86_64 latest: run psy publish, or give --ostar FILE\n`,
      ],
      [
        ['deploy', 'n1', '--copy', '--os-version', '20250101-000000', '--config', 'copy.config.ts'],
        `psy deploy: the deaddrop replica ${join(dir, 'dd', 'os')} has no signed psyopsOS.x86_64 version 20250101-000000: run psy publish, or give --ostar FILE\n`,
      ],
    ];
    for (const [args, line] of cases) {
      const r = await psy(args, dir);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toBe(line);
    }
    writeFileSync(join(dir, 'bad-copy.config.ts'), readFileSync(join(dir, 'copy.config.ts'), 'utf8').replace("copy: ['n2']", "copy: ['n9']"));
    const bad = await psy(['deploy', 'n1', '--config', 'bad-copy.config.ts'], dir);
    expect(bad.stderr).toBe("psy deploy: settings.nodes.copy: unknown node 'n9' (no nodes/n9/node.json)\n");
    for (const n of NODES) expect(log(n)).toBe('');
  });
});
