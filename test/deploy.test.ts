/**
 * psy deploy's own logic against a real OpenSSH server on 127.0.0.1 (Debian's sshd,
 * started here on a free port with a throwaway host key and client key). What runs on
 * the "nodes" is a stand-in, named as such: a shell script answering as neuralupgrade
 * does (status/apply JSON) and a `reboot` that switches its recorded slot, one state
 * folder per node alias. It proves the ssh invocation, the waves, stopping at the first
 * failing wave, the report, --dry-run and --json; it does not prove that a node updates
 * (that is neuralupgrade's own test in a QEMU guest).
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process';
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
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
  cp "$STATE_ROOT/latest" "$d/$other"; echo "$other" > "$d/next"
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
      .map((n) => [
        `Host ${n}`,
        '  HostName 127.0.0.1',
        `  Port ${n === 'z-dead' ? 1 : port}`,
        `  IdentityFile ${join(dir, 'client')}`,
        `  UserKnownHostsFile ${join(dir, 'known_hosts')}`,
        '  StrictHostKeyChecking yes',
        `  SetEnv FAKE_NODE=${n}`,
        '',
      ].join('\n'))
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
      JSON.stringify({name: n, mac: `52:54:00:00:00:0${i}`, public: {ssh: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP/qIGyDkq2W4Juz3g7Lk2lY8EqfdZdhJaqVZdflq7Af root@x', age: 'age16y6whv8aan0s03uh3ts0ets4wn5l4jfuudtegcxmd75x94m3cd9q8pxjnu'}}),
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
    for (const [f, v] of Object.entries({booted: 'A', A: '1.0', B: '0.9', default: 'A', next: '', mode: modes[n] ?? 'ok', log: ''})) writeFileSync(join(d, f), v ? `${v}\n` : '');
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
    const rec = (psynet?: {ip: string; groups: string[]}): NodeRecord => ({name: 'n', mac: '52:54:00:00:00:01', ...(psynet ? {psynet} : {}), public: {ssh: 'ssh-ed25519 AAAA', age: 'age1x'}});
    expect(hostOf(rec({ip: '10.10.10.5/22', groups: []}), parseNodeSettings({}))).toBe('10.10.10.5');
    expect(hostOf(rec({ip: '10.10.10.5/22', groups: []}), parseNodeSettings({hosts: {n: 'n.example.net'}}))).toBe('n.example.net');
    expect(() => hostOf(rec(), parseNodeSettings({}))).toThrow("node 'n' has no host: set settings.nodes.hosts.n or give it a psynet address");
  });

  it('updates nodes over ssh, reboots them and waits until they marked the new slot good', async () => {
    const r = await psy(['deploy', 'n1', 'n2', '--reboot', '--wait', '--poll', '0.2', '--json'], dir);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {ok: boolean; failedWave: null; nodes: Array<Record<string, unknown>>};
    expect(j.ok).toBe(true);
    expect(j.nodes).toEqual(['n1', 'n2'].map((node) => ({node, host: node, wave: 1, outcome: 'updated', before: {slot: 'A', version: '1.0'}, now: {slot: 'B', version: '2.0'}, written: {slot: 'B', version: '2.0'}, error: null})));
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
    expect(j.nodes[0]).toMatchObject({node: 'n1', outcome: 'failed', now: {slot: 'A', version: '1.0'}, error: 'came back on A (1.0): the boot of B failed and the node fell back'});
    expect(j.nodes[1]).toMatchObject({node: 'n2', outcome: 'failed', now: {slot: 'B', version: '2.0'}, error: 'not up and marked good on B after 2 s (up on B but not marked good yet)'});
  });

  it('--dry-run prints the plan and connects to nothing', async () => {
    const r = await psy(['deploy', 'n1', 'n2', 'n3', '--waves', '1,100%', '--reboot', '--dry-run'], dir);
    expect(r.code, r.stderr).toBe(0);
    const cfg = join(dir, 'ssh_config');
    expect(r.stdout).toBe(
      [
        'wave 1: n1',
        `  n1: ssh -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=2 -F ${cfg} -l root -- n1 neuralupgrade apply nonbooted --os-version latest --json, then reboot`,
        'wave 2: n2, n3',
        `  n2: ssh -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=2 -F ${cfg} -l root -- n2 neuralupgrade apply nonbooted --os-version latest --json, then reboot`,
        `  n3: ssh -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=2 -F ${cfg} -l root -- n3 neuralupgrade apply nonbooted --os-version latest --json, then reboot`,
        '',
      ].join('\n'),
    );
    const j = JSON.parse((await psy(['deploy', 'n1', '--dry-run', '--json', '--wait'], dir)).stdout) as {dryRun: boolean; wait: boolean; waves: Array<{nodes: Array<{ssh: string[]}>}>};
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
