import {spawn} from 'node:child_process';
import {createReadStream} from 'node:fs';
import {basename} from 'node:path';
import {isPsyError, PsyError} from '../errors.js';
import {missingToolError, tailOf} from '../tools/run.js';
import type {NodeSettings} from './settings.js';
import {ipOf, type NodeRecord} from './store.js';
import {shellWord} from '../tools/shell-quote.js';

/**
 * `psy deploy`: update nodes over ssh (the system OpenSSH client), in waves. On each
 * node: read its status, `neuralupgrade apply nonbooted --os-version latest`, reboot,
 * then poll until it is up on the slot that was written and has marked that slot good
 * (the node does that itself, from its own health checks). A wave whose every node
 * succeeded lets the next one start; the first failing wave stops the deploy. A node that
 * cannot reach the bucket gets the signed ostar and its .minisig copied over the same ssh
 * (into a fresh folder under /tmp, removed afterwards) and applies it with --os-tar, which
 * verifies it exactly as a download.
 */

type Slot = 'A' | 'B';

export interface NodeStatus {
  readonly booted: Slot | undefined;
  readonly versions: Readonly<Record<Slot, string | undefined>>;
  /** The slot the next boot starts. */
  readonly nextBoot: Slot | undefined;
  readonly knownGood: Slot;
}

export interface DeployOptions {
  readonly reboot: boolean;
  readonly wait: boolean;
  /** Seconds to wait for a node to come back and mark itself good. */
  readonly timeoutSec: number;
  /** Seconds between polls while waiting. */
  readonly pollSec: number;
  readonly osVersion: string;
  readonly log: (line: string) => void;
}

/** A signed OS tarball on this machine, copied to the nodes that cannot download it. */
export interface CopySource {
  readonly ostar: string;
  readonly minisig: string;
}

export type NodeOutcome = 'updated' | 'written' | 'rebooted' | 'failed' | 'not-attempted';

export interface NodeReport {
  readonly node: string;
  readonly host: string;
  readonly wave: number;
  readonly outcome: NodeOutcome;
  /** Booted slot and its version before the deploy (when it was read). */
  readonly before: {slot: Slot | null; version: string | null} | null;
  /** What the node runs now, as far as the deploy saw (null when it could not be read). */
  readonly now: {slot: Slot | null; version: string | null} | null;
  /** The slot and version written. */
  readonly written: {slot: Slot; version: string} | null;
  readonly error: string | null;
}

export interface DeployReport {
  readonly ok: boolean;
  readonly waves: ReadonlyArray<readonly string[]>;
  /** 1-based number of the wave that failed, or null. */
  readonly failedWave: number | null;
  readonly nodes: readonly NodeReport[];
}

export interface DeployTarget {
  readonly name: string;
  readonly host: string;
  /** Copy this ostar to the node instead of letting it download. */
  readonly copy?: CopySource;
}

/** The folder the copy goes to on the node (mktemp's template: a fresh one per deploy). */
export const REMOTE_COPY_TEMPLATE = '/tmp/psy-deploy.XXXXXX';

/** What the node runs to apply: from the bucket, or the copied tarball in `remoteDir`. */
export function applyCommand(osVersion: string, copy?: {ostar: string; remoteDir: string}): string[] {
  return copy
    ? ['neuralupgrade', 'apply', 'nonbooted', '--os-tar', `${copy.remoteDir}/${basename(copy.ostar)}`, '--json']
    : ['neuralupgrade', 'apply', 'nonbooted', '--os-version', osVersion, '--json'];
}

/** Where a node is reached: settings.nodes.hosts, else its psynet address. */
export function hostOf(record: NodeRecord, settings: NodeSettings): string {
  const host = settings.hosts[record.name] ?? (record.psynet ? ipOf(record.psynet.ip) : undefined);
  if (host === undefined)
    throw new PsyError('no-host', `node '${record.name}' has no host: set settings.nodes.hosts.${record.name} or give it a psynet address`);
  return host;
}

/**
 * Waves from a spec like `1,25%,100%`: each entry is a cumulative count or share of
 * the nodes; a wave holds the nodes up to its mark that earlier waves did not. The
 * last mark must cover every node. Empty waves are dropped.
 */
export function planWaves(nodes: readonly string[], spec: string | undefined): string[][] {
  if (spec === undefined) return nodes.length ? [[...nodes]] : [];
  const marks = spec.split(',').map((s) => s.trim());
  let done = 0;
  const waves: string[][] = [];
  for (const m of marks) {
    const pct = /^(\d+(?:\.\d+)?)%$/.exec(m);
    const abs = /^\d+$/.exec(m);
    if (!pct && !abs) throw new PsyError('usage', `--waves ${spec}: '${m}' is neither a count nor a percentage`);
    const n = pct ? Math.ceil((Number(pct[1]) / 100) * nodes.length) : Number(m);
    if (pct && Number(pct[1]) > 100) throw new PsyError('usage', `--waves ${spec}: ${m} is more than 100%`);
    const upTo = Math.min(Math.max(n, done), nodes.length);
    if (upTo > done) waves.push(nodes.slice(done, upTo));
    done = upTo;
  }
  if (done < nodes.length) throw new PsyError('usage', `--waves ${spec} covers ${done} of ${nodes.length} nodes; end with 100%`);
  return waves;
}

export interface SshResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs commands on nodes with the system ssh, never asking (BatchMode) and never hanging on a dead host. */
export class Ssh {
  constructor(
    private readonly settings: NodeSettings,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** The ssh command line for `remote` on `host`. */
  argv(host: string, remote: readonly string[]): string[] {
    return this.argvLine(host, remote.map(shellWord).join(' '));
  }

  /** The same for a command line the remote shell reads as it is. */
  private argvLine(host: string, line: string): string[] {
    const s = this.settings.ssh;
    // ssh keeps the first value it is given: the settings' options come first, so they can
    // lengthen the timeouts for slow nodes
    return [
      ...s.options,
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=10',
      '-o',
      'ServerAliveInterval=5',
      '-o',
      'ServerAliveCountMax=2',
      ...(s.port === undefined ? [] : ['-p', String(s.port)]),
      '-l',
      s.user,
      '--',
      host,
      line,
    ];
  }

  run(host: string, remote: readonly string[]): Promise<SshResult> {
    return this.spawn(this.argv(host, remote));
  }

  /** Writes the local file `from` to `to` on the node (`cat >` over ssh: no scp or sftp needed there). */
  send(host: string, from: string, to: string): Promise<SshResult> {
    return this.spawn(this.argvLine(host, `cat > ${shellWord(to)}`), from);
  }

  private spawn(argv: string[], stdinFile?: string): Promise<SshResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('ssh', argv, {env: this.env, stdio: [stdinFile === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']});
      if (stdinFile !== undefined) {
        const input = createReadStream(stdinFile);
        input.on('error', (e) => {
          child.kill();
          reject(new PsyError('deploy-failed', `cannot read ${stdinFile}: ${e.message}`));
        });
        // ssh gone early (unreachable node): its exit code says why, not the broken pipe
        child.stdin!.on('error', () => {});
        input.pipe(child.stdin!);
      }
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? missingToolError('ssh') : new PsyError('ssh-failed', `ssh: ${e.message}`)));
      child.on('close', (code) => resolve({code, stdout, stderr}));
    });
  }
}

/** Read a node's slots from `neuralupgrade status --json`. */
export function parseStatus(text: string): NodeStatus {
  const j = JSON.parse(text) as {booted?: Slot; slots: Record<Slot, {version?: string}>; nextBoot: {boots?: Slot; knownGood: Slot}};
  return {
    booted: j.booted,
    versions: {A: j.slots.A.version, B: j.slots.B.version},
    nextBoot: j.nextBoot.boots,
    knownGood: j.nextBoot.knownGood,
  };
}

function failure(what: string, r: SshResult): string {
  if (r.code === 255) return `${what}: ssh could not reach the node (${tailOf(r.stderr, 1) || 'exit 255'})`;
  return `${what} failed (exit ${r.code}): ${tailOf(r.stderr || r.stdout, 2)}`;
}

async function status(ssh: Ssh, host: string): Promise<NodeStatus> {
  const r = await ssh.run(host, ['neuralupgrade', 'status', '--json']);
  if (r.code !== 0) throw new PsyError('deploy-failed', failure('neuralupgrade status', r));
  try {
    return parseStatus(r.stdout);
  } catch {
    throw new PsyError('deploy-failed', `neuralupgrade status printed no status: ${tailOf(r.stdout, 1)}`);
  }
}

/** Copies the ostar and its signature into a fresh folder on the node, applies it from there, removes the folder. */
async function copyAndApply(ssh: Ssh, host: string, c: CopySource): Promise<SshResult> {
  const mk = await ssh.run(host, ['mktemp', '-d', REMOTE_COPY_TEMPLATE]);
  const remoteDir = mk.stdout.trim();
  if (mk.code !== 0 || !remoteDir.startsWith(REMOTE_COPY_TEMPLATE.slice(0, -6))) throw new PsyError('deploy-failed', failure('mktemp on the node', mk));
  try {
    for (const f of [c.ostar, c.minisig]) {
      const r = await ssh.send(host, f, `${remoteDir}/${basename(f)}`);
      if (r.code !== 0) throw new PsyError('deploy-failed', failure(`copying ${basename(f)}`, r));
    }
    return await ssh.run(host, applyCommand('', {ostar: c.ostar, remoteDir}));
  } finally {
    await ssh.run(host, ['rm', '-rf', remoteDir]).catch(() => undefined);
  }
}

const other = (s: Slot): Slot => (s === 'A' ? 'B' : 'A');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function deployNode(ssh: Ssh, t: DeployTarget, wave: number, o: DeployOptions): Promise<NodeReport> {
  let before: NodeReport['before'] = null;
  let written: NodeReport['written'] = null;
  let now: NodeReport['now'] = null;
  const report = (outcome: NodeOutcome, error: string | null): NodeReport => ({node: t.name, host: t.host, wave, outcome, before, now, written, error});
  try {
    const st = await status(ssh, t.host);
    if (st.booted === undefined) throw new PsyError('deploy-failed', 'neuralupgrade does not know which slot is booted');
    before = {slot: st.booted, version: st.versions[st.booted] ?? null};
    now = before;
    let a: SshResult;
    if (t.copy) {
      o.log(`${t.name}: on ${st.booted} (${before.version ?? 'no version'}); copying ${basename(t.copy.ostar)} to it for the other slot`);
      a = await copyAndApply(ssh, t.host, t.copy);
    } else {
      o.log(`${t.name}: on ${st.booted} (${before.version ?? 'no version'}); applying ${o.osVersion} to the other slot`);
      a = await ssh.run(t.host, applyCommand(o.osVersion));
    }
    if (a.code !== 0) throw new PsyError('deploy-failed', failure('neuralupgrade apply', a));
    let applied: {slots: Array<{slot: Slot; version: string}>};
    try {
      applied = JSON.parse(a.stdout) as typeof applied;
    } catch {
      throw new PsyError('deploy-failed', `neuralupgrade apply printed no result: ${tailOf(a.stdout, 1)}`);
    }
    const w = applied.slots.find((s) => s.slot === other(st.booted!));
    if (w === undefined) throw new PsyError('deploy-failed', `neuralupgrade apply did not write slot ${other(st.booted)}`);
    written = {slot: w.slot, version: w.version};
    o.log(`${t.name}: ${w.slot} has ${w.version}`);
    if (!o.reboot && !o.wait) return report('written', null);
    if (o.reboot) {
      // The connection may drop as the node goes down: 255 is what ssh says then.
      const r = await ssh.run(t.host, ['reboot']);
      if (r.code !== 0 && r.code !== 255) throw new PsyError('deploy-failed', failure('reboot', r));
      o.log(`${t.name}: rebooting`);
      if (!o.wait) return report('rebooted', null);
    }
    const deadline = Date.now() + o.timeoutSec * 1000;
    let last = 'no answer yet';
    for (;;) {
      await sleep(o.pollSec * 1000);
      const r = await ssh.run(t.host, ['neuralupgrade', 'status', '--json']);
      if (r.code === 0) {
        let s: NodeStatus | undefined;
        try {
          s = parseStatus(r.stdout);
        } catch {
          last = 'neuralupgrade status printed no status';
        }
        if (s !== undefined && s.booted !== undefined) {
          now = {slot: s.booted, version: s.versions[s.booted] ?? null};
          if (s.booted === w.slot && s.knownGood === w.slot) {
            o.log(`${t.name}: up on ${w.slot} (${w.version}), marked good`);
            return report('updated', null);
          }
          if (s.booted === w.slot) last = `up on ${w.slot} but not marked good yet`;
          else if (s.nextBoot !== w.slot) {
            // Still on the old slot with no try of the new one pending: the try was spent.
            throw new PsyError(
              'deploy-failed',
              `came back on ${s.booted} (${now.version ?? 'no version'}): the boot of ${w.slot} failed and the node fell back`,
            );
          } else last = `still on ${s.booted}, ${w.slot} not booted yet`;
        }
      } else {
        last = r.code === 255 ? 'not answering on ssh' : failure('neuralupgrade status', r);
      }
      if (Date.now() >= deadline) throw new PsyError('deploy-failed', `not up and marked good on ${w.slot} after ${o.timeoutSec} s (${last})`);
    }
  } catch (err) {
    if (isPsyError(err) && err.code === 'missing-tool') throw err;
    return report('failed', err instanceof Error ? err.message : String(err));
  }
}

/** What the nodes of waves that never ran are left on (best effort: null when unreachable). */
async function peek(ssh: Ssh, t: DeployTarget, wave: number): Promise<NodeReport> {
  let now: NodeReport['now'] = null;
  let error: string | null = null;
  try {
    const s = await status(ssh, t.host);
    now = {slot: s.booted ?? null, version: s.booted ? (s.versions[s.booted] ?? null) : null};
  } catch (err) {
    if (isPsyError(err) && err.code === 'missing-tool') throw err;
    error = err instanceof Error ? err.message : String(err);
  }
  return {node: t.name, host: t.host, wave, outcome: 'not-attempted', before: now, now, written: null, error};
}

export async function deploy(ssh: Ssh, targets: readonly DeployTarget[], waves: ReadonlyArray<readonly string[]>, o: DeployOptions): Promise<DeployReport> {
  const byName = new Map(targets.map((t) => [t.name, t]));
  const nodes: NodeReport[] = [];
  let failedWave: number | null = null;
  for (const [i, wave] of waves.entries()) {
    if (failedWave !== null) {
      for (const n of wave) nodes.push(await peek(ssh, byName.get(n)!, i + 1));
      continue;
    }
    o.log(`wave ${i + 1}/${waves.length}: ${wave.join(', ')}`);
    const reports = await Promise.all(wave.map((n) => deployNode(ssh, byName.get(n)!, i + 1, o)));
    nodes.push(...reports);
    if (reports.some((r) => r.outcome === 'failed')) failedWave = i + 1;
  }
  return {ok: failedWave === null, waves: waves.map((w) => [...w]), failedWave, nodes};
}
