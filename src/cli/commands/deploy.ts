import {statSync} from 'node:fs';
import {join, resolve} from 'node:path';
import {readLatest, signatureName, tarballName} from '../../deaddrop/layout.js';
import {parseDeaddropSettings} from '../../deaddrop/settings.js';
import {runTool} from '../../tools/run.js';
import {PsyError} from '../../errors.js';
import {applyCommand, deploy, hostOf, planWaves, REMOTE_COPY_TEMPLATE, Ssh, type CopySource, type DeployReport, type DeployTarget} from '../../node/deploy.js';
import {loadNodeProject, type NodeProject} from '../../node/project.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

const help = `Usage: psy deploy NODE... | --all [options]

Updates nodes over ssh (the system OpenSSH client): on each node
'neuralupgrade apply nonbooted --os-version latest' writes the slot that is not running;
with --reboot the node restarts into it, with --wait psy polls until the node is up on
that slot and has marked it good itself. Nodes are reached at settings.nodes.hosts.NAME,
else at their psynet address, as settings.nodes.ssh.user (default root).
A node that cannot reach the bucket (--copy, or listed in settings.nodes.copy) gets the
signed ostar and its .minisig copied over ssh and applies it with
'neuralupgrade apply nonbooted --os-tar FILE' (verified as a download is).

Options:
  --all                every node in nodes/ (in name order)
  --waves SPEC         cumulative wave marks, counts or shares, e.g. 1,25%,100%: a wave
                       starts only when every node of the one before succeeded; the
                       first failing wave stops the deploy
  --reboot             reboot each node after writing its slot
  --wait               wait until each node is up on the new slot and marked good
  --timeout SECONDS    how long --wait waits per node (default 600)
  --poll SECONDS       seconds between status polls while waiting (default 5)
  --os-version V       the version to apply (default latest)
  --copy               copy the ostar to every node instead of letting it download
  --ostar FILE         the signed ostar to copy (FILE.minisig beside it); default: the
                       --os-version of psyopsOS in the local deaddrop replica
  --dry-run            print the waves and the ssh commands; connect to nothing
  --json               print the report as JSON
  --config FILE        use FILE instead of build.config.ts`;

export const command: Command = {
  name: 'deploy',
  summary: 'update nodes over ssh, in waves, and wait for them to mark the new slot good',
  help,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('deploy', argv, {
      all: {type: 'boolean'},
      waves: {type: 'string'},
      reboot: {type: 'boolean'},
      wait: {type: 'boolean'},
      timeout: {type: 'string'},
      poll: {type: 'string'},
      'os-version': {type: 'string'},
      copy: {type: 'boolean'},
      ostar: {type: 'string'},
      'dry-run': {type: 'boolean'},
      json: {type: 'boolean'},
      config: {type: 'string'},
    });
    const seconds = (name: string, v: string | undefined, d: number): number => {
      if (v === undefined) return d;
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new PsyError('usage', `--${name} ${v}: give a number of seconds`);
      return n;
    };
    const timeoutSec = seconds('timeout', values.timeout, 600);
    const pollSec = seconds('poll', values.poll, 5);
    const osVersion = values['os-version'] ?? 'latest';
    if (values.all === true && positionals.length) throw new PsyError('usage', 'give node names or --all, not both');
    if (values.all !== true && positionals.length === 0) throw new PsyError('usage', 'name the nodes to deploy, or --all (see psy deploy --help)');
    const p = await loadNodeProject(io.cwd, values.config);
    const names = values.all === true ? p.nodes.names() : [...new Set(positionals)];
    if (names.length === 0) throw new PsyError('usage', `no nodes in ${p.settings.dir}/`);
    const known = new Set(p.nodes.names());
    for (const n of p.settings.copy)
      if (!known.has(n)) throw new PsyError('bad-config', `settings.nodes.copy: unknown node '${n}' (no ${p.settings.dir}/${n}/node.json)`);
    if (values.ostar !== undefined && values.copy !== true && !names.some((n) => p.settings.copy.includes(n))) {
      throw new PsyError('usage', '--ostar is the file to copy: give --copy too (or list the nodes in settings.nodes.copy)');
    }
    const copies = (n: string) => values.copy === true || p.settings.copy.includes(n);
    const source = names.some(copies) ? await copySource(p, values.ostar, osVersion, io.cwd) : undefined;
    const targets: DeployTarget[] = names.map((n) => ({name: n, host: hostOf(p.nodes.read(n), p.settings), ...(copies(n) ? {copy: source!} : {})}));
    const waves = planWaves(names, values.waves);
    const ssh = new Ssh(p.settings, io.env);
    if (values['dry-run'] === true) {
      const plan = waves.map((w, i) => ({
        wave: i + 1,
        nodes: w.map((n) => {
          const t = targets.find((x) => x.name === n)!;
          const remote = applyCommand(osVersion, t.copy ? {ostar: t.copy.ostar, remoteDir: REMOTE_COPY_TEMPLATE} : undefined);
          return {node: n, host: t.host, ...(t.copy ? {copy: t.copy} : {}), ssh: ['ssh', ...ssh.argv(t.host, remote)]};
        }),
      }));
      if (values.json === true) {
        writeLine(io.stdout, JSON.stringify({dryRun: true, reboot: values.reboot === true, wait: values.wait === true, waves: plan}));
      } else {
        for (const w of plan) {
          writeLine(io.stdout, `wave ${w.wave}: ${w.nodes.map((n) => n.node).join(', ')}`);
          for (const n of w.nodes)
            writeLine(
              io.stdout,
              `  ${n.node}: ${n.copy ? `copy ${n.copy.ostar} and its .minisig to ${n.host}:${REMOTE_COPY_TEMPLATE}/, then ` : ''}${n.ssh.join(' ')}${values.reboot ? ', then reboot' : ''}${values.wait ? ', then wait until marked good' : ''}`,
            );
        }
      }
      return 0;
    }
    // A missing ssh is said once, before any wave starts.
    await runTool('ssh', ['-V']);
    const report = await deploy(ssh, targets, waves, {
      reboot: values.reboot === true,
      wait: values.wait === true,
      timeoutSec,
      pollSec,
      osVersion,
      log: values.json === true ? () => {} : (l) => writeLine(io.stderr, `psy deploy: ${l}`),
    });
    if (values.json === true) writeLine(io.stdout, JSON.stringify(report));
    else printReport(report, io.stdout);
    return report.ok ? 0 : 1;
  },
};

/** The signed ostar to copy: --ostar FILE, else the version in the local deaddrop replica. */
async function copySource(p: NodeProject, ostar: string | undefined, osVersion: string, cwd: string): Promise<CopySource> {
  const isFile = (f: string) => {
    try {
      return statSync(f).isFile();
    } catch {
      return false;
    }
  };
  if (ostar !== undefined) {
    const file = resolve(cwd, ostar);
    if (!isFile(file)) throw new PsyError('missing-input', `--ostar ${ostar}: no such file`);
    if (!isFile(`${file}.minisig`))
      throw new PsyError('missing-input', `--ostar ${ostar}: no ${ostar}.minisig beside it (the node verifies the tarball against it)`);
    return {ostar: file, minisig: `${file}.minisig`};
  }
  const dd = parseDeaddropSettings(p.config['deaddrop'], p.root);
  const arch = dd.ostar[0]?.arch;
  if (arch === undefined) throw new PsyError('usage', 'settings.deaddrop.ostar names no OS tarball: give the one to copy with --ostar FILE');
  if (dd.ostar.length > 1) throw new PsyError('usage', `settings.deaddrop.ostar names ${dd.ostar.length} OS tarballs: give the one to copy with --ostar FILE`);
  const osDir = join(dd.root, 'os');
  const version = osVersion === 'latest' ? await readLatest(osDir, 'psyopsOS', arch) : osVersion;
  const file = version === undefined ? undefined : join(osDir, tarballName('psyopsOS', arch, version));
  const sig = version === undefined ? undefined : join(osDir, signatureName('psyopsOS', arch, version));
  if (file === undefined || sig === undefined || !isFile(file) || !isFile(sig)) {
    throw new PsyError(
      'missing-input',
      `the deaddrop replica ${osDir} has no signed psyopsOS.${arch} ${osVersion === 'latest' ? 'latest' : `version ${osVersion}`}: run psy publish, or give --ostar FILE`,
    );
  }
  return {ostar: file, minisig: sig};
}

function printReport(r: DeployReport, out: NodeJS.WritableStream): void {
  const v = (x: {slot: string | null; version: string | null} | null) => (x === null ? 'unknown' : `${x.version ?? 'no version'} (${x.slot ?? '?'})`);
  for (const n of r.nodes) {
    switch (n.outcome) {
      case 'updated':
        writeLine(out, `${n.node}: updated ${v(n.before)} -> ${v(n.now)}, marked good`);
        break;
      case 'written':
        writeLine(out, `${n.node}: ${n.written!.slot} has ${n.written!.version}; still running ${v(n.before)} until it reboots`);
        break;
      case 'rebooted':
        writeLine(out, `${n.node}: ${n.written!.slot} has ${n.written!.version}; rebooting (not waited for)`);
        break;
      case 'failed':
        writeLine(out, `${n.node}: FAILED in wave ${n.wave}, on ${v(n.now)}: ${n.error}`);
        break;
      case 'not-attempted':
        writeLine(out, `${n.node}: not attempted (wave ${n.wave}), left on ${v(n.now)}${n.error ? ` [${n.error}]` : ''}`);
        break;
    }
  }
  if (r.failedWave !== null) writeLine(out, `deploy stopped at wave ${r.failedWave} of ${r.waves.length}`);
}
