import {readFile} from 'node:fs/promises';
import {resolve} from 'node:path';
import {PsyError} from '../../errors.js';
import {loadIdentities} from '../../node/age.js';
import {psynetCertDetails, sshFingerprint, type PsynetCertDetails} from '../../node/keys.js';
import {ageRecipientOf, newNode, rekeyNode, rotateNode} from '../../node/nodes.js';
import {loadNodeProject} from '../../node/project.js';
import {requireRecipients} from '../../node/settings.js';
import type {NodeRecord} from '../../node/store.js';
import {parseCommandArgs, writeLine, type Command, type CommandIo} from '../command.js';

const help = `Usage: psy node <subcommand> [options]

Nodes as code: each node is nodes/NAME/ beside build.config.ts. node.json holds the
public parts (MAC, psynet address, SSH and age public keys, psynet certificate);
secrets.age the secret files of its psyops-secret partition (nodename, mactab,
ssh_host_ed25519_key, age.key, network.interfaces, psynet.host.{crt,key}) as a tar
encrypted to settings.nodes.recipients. Both are safe to commit.

Subcommands:
  new NAME --mac MAC [--psynet-ip CIDR] [--psynet-groups G[,G]] [--flavor-text T]
           [--interfaces FILE]
                     make a node: SSH host key (ssh-keygen), age identity, psynet
                     certificate signed by the CA (when there is one and --psynet-ip is
                     given), network.interfaces (DHCP on psy0 unless --interfaces)
  list [--json]      the nodes
  show NAME [--json] public parts: SSH fingerprint, age recipient, psynet certificate
  rm NAME            delete the node's folder
  rotate NAME [--ssh] [--age] [--psynet]
                     new keys for the parts named (all when none is)
  rekey [NAME...]    re-encrypt secrets to the current recipients (all nodes when none)

Decrypting (rotate, rekey, psynet sign, building sectar@NAME) needs an operator's age
identity: PSY_AGE_IDENTITY (an identity file as age -i takes it, or the key itself),
else ~/.config/psy/age.key.

Options:
  --config FILE      use FILE instead of build.config.ts`;

export const command: Command = {
  name: 'node',
  summary: 'make, list, show, rotate and remove nodes (secrets encrypted in nodes/)',
  help,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    switch (sub) {
      case 'new':
        return cmdNew(rest, io);
      case 'list':
        return cmdList(rest, io);
      case 'show':
        return cmdShow(rest, io);
      case 'rm':
        return cmdRm(rest, io);
      case 'rotate':
        return cmdRotate(rest, io);
      case 'rekey':
        return cmdRekey(rest, io);
      case undefined:
        throw new PsyError('usage', 'missing subcommand: new, list, show, rm, rotate or rekey (see psy node --help)');
      default:
        throw new PsyError('usage', `unknown subcommand '${sub}' (see psy node --help)`);
    }
  },
};

function one(positionals: string[], what: string): string {
  if (positionals.length !== 1)
    throw new PsyError('usage', `psy node ${what} takes one node name${positionals.length > 1 ? ` (got ${positionals.length})` : ''}`);
  return positionals[0]!;
}

async function cmdNew(argv: string[], io: CommandIo): Promise<number> {
  const {values, positionals} = parseCommandArgs('node', argv, {
    mac: {type: 'string'},
    'psynet-ip': {type: 'string'},
    'psynet-groups': {type: 'string', multiple: true},
    'flavor-text': {type: 'string'},
    interfaces: {type: 'string'},
    config: {type: 'string'},
  });
  const name = one(positionals, 'new');
  if (values.mac === undefined) throw new PsyError('usage', 'psy node new needs --mac MAC (the NIC that becomes psy0)');
  const p = await loadNodeProject(io.cwd, values.config);
  const recipients = requireRecipients(p.settings);
  const interfaces =
    values.interfaces === undefined
      ? undefined
      : await readFile(resolve(io.cwd, values.interfaces), 'utf8').catch(() => {
          throw new PsyError('missing-input', `--interfaces ${values.interfaces}: cannot be read`);
        });
  const {record, notes} = await newNode(
    p.nodes,
    p.psynet,
    recipients,
    {
      name,
      mac: values.mac,
      ...(values['psynet-ip'] === undefined ? {} : {psynetIp: values['psynet-ip']}),
      ...(values['psynet-groups'] === undefined ? {} : {psynetGroups: values['psynet-groups']}),
      ...(values['flavor-text'] === undefined ? {} : {flavorText: values['flavor-text']}),
      ...(interfaces === undefined ? {} : {interfaces}),
    },
    () => loadIdentities(io.env),
  );
  for (const n of notes) writeLine(io.stderr, `psy node: ${n}`);
  writeLine(io.stdout, `node ${record.name}: ${p.nodes.rel(record.name)}/ (targets sectar@${record.name}, diskimg@${record.name})`);
  await printPublic(io, record);
  return 0;
}

interface ShowJson {
  name: string;
  mac: string;
  psynet: {ip: string; groups: readonly string[]} | null;
  flavorText: string | null;
  ssh: {publicKey: string; fingerprint: string};
  age: {recipient: string};
  psynetCert: PsynetCertDetails | null;
}

async function describe(record: NodeRecord, withCert: boolean): Promise<ShowJson> {
  return {
    name: record.name,
    mac: record.mac,
    psynet: record.psynet ? {ip: record.psynet.ip, groups: record.psynet.groups} : null,
    flavorText: record.flavorText ?? null,
    ssh: {publicKey: record.public.ssh, fingerprint: sshFingerprint(record.public.ssh)},
    age: {recipient: record.public.age},
    psynetCert: withCert && record.public.psynetCert ? await psynetCertDetails(record.public.psynetCert) : null,
  };
}

async function printPublic(io: CommandIo, record: NodeRecord): Promise<void> {
  const d = await describe(record, true);
  writeLine(io.stdout, `  mac          ${d.mac}`);
  if (d.flavorText !== null) writeLine(io.stdout, `  flavor text  ${d.flavorText}`);
  writeLine(io.stdout, `  ssh          ${d.ssh.fingerprint} (ED25519)`);
  writeLine(io.stdout, `  age          ${d.age.recipient}`);
  if (d.psynet === null) {
    writeLine(io.stdout, '  psynet       none');
  } else if (d.psynetCert === null) {
    writeLine(io.stdout, `  psynet       ${d.psynet.ip} (not signed: psy psynet sign ${d.name})`);
  } else {
    const c = d.psynetCert;
    writeLine(io.stdout, `  psynet       ${c.ips.join(', ')} groups ${c.groups.join(',') || '-'}`);
    writeLine(
      io.stdout,
      `  psynet cert  ${c.name}, valid ${c.notBefore} to ${c.notAfter}, issuer ${c.issuer.slice(0, 16)}, fingerprint ${c.fingerprint.slice(0, 16)}`,
    );
  }
}

async function cmdList(argv: string[], io: CommandIo): Promise<number> {
  const {values, positionals} = parseCommandArgs('node', argv, {json: {type: 'boolean'}, config: {type: 'string'}});
  if (positionals.length) throw new PsyError('usage', `psy node list takes no arguments (got '${positionals[0]}')`);
  const p = await loadNodeProject(io.cwd, values.config);
  const nodes = p.nodes.all();
  if (values.json === true) {
    writeLine(io.stdout, JSON.stringify(await Promise.all(nodes.map((n) => describe(n, false)))));
    return 0;
  }
  if (nodes.length === 0) {
    writeLine(io.stdout, `no nodes (${p.settings.dir}/ is empty; psy node new NAME --mac MAC makes one)`);
    return 0;
  }
  const w = Math.max(...nodes.map((n) => n.name.length));
  for (const n of nodes) {
    const psy = n.psynet ? `${n.psynet.ip}${n.public.psynetCert ? '' : ' (unsigned)'}` : '-';
    writeLine(io.stdout, `${n.name.padEnd(w)}  ${n.mac}  ${psy.padEnd(18)}  ${sshFingerprint(n.public.ssh)}${n.flavorText ? `  ${n.flavorText}` : ''}`);
  }
  return 0;
}

async function cmdShow(argv: string[], io: CommandIo): Promise<number> {
  const {values, positionals} = parseCommandArgs('node', argv, {json: {type: 'boolean'}, check: {type: 'boolean'}, config: {type: 'string'}});
  const name = one(positionals, 'show');
  const p = await loadNodeProject(io.cwd, values.config);
  const record = p.nodes.read(name);
  if (values.check === true) {
    // with an identity: the secrets decrypt and agree with the public record
    const files = await p.nodes.secrets(name, loadIdentities(io.env));
    if ((await ageRecipientOf(files)) !== record.public.age)
      throw new PsyError('corrupt-secrets', `${p.nodes.rel(name, 'secrets.age')}: age.key does not match public.age of node.json`);
  }
  if (values.json === true) {
    writeLine(io.stdout, JSON.stringify(await describe(record, true)));
    return 0;
  }
  writeLine(io.stdout, `node ${record.name}`);
  await printPublic(io, record);
  return 0;
}

async function cmdRm(argv: string[], io: CommandIo): Promise<number> {
  const {values, positionals} = parseCommandArgs('node', argv, {config: {type: 'string'}});
  const name = one(positionals, 'rm');
  const p = await loadNodeProject(io.cwd, values.config);
  await p.nodes.remove(name);
  writeLine(io.stdout, `removed node ${name} (${p.nodes.rel(name)}/)`);
  return 0;
}

async function cmdRotate(argv: string[], io: CommandIo): Promise<number> {
  const {values, positionals} = parseCommandArgs('node', argv, {
    ssh: {type: 'boolean'},
    age: {type: 'boolean'},
    psynet: {type: 'boolean'},
    config: {type: 'string'},
  });
  const name = one(positionals, 'rotate');
  const p = await loadNodeProject(io.cwd, values.config);
  const recipients = requireRecipients(p.settings);
  p.nodes.read(name);
  const {record, notes} = await rotateNode(
    p.nodes,
    p.psynet,
    recipients,
    name,
    {ssh: values.ssh === true, age: values.age === true, psynet: values.psynet === true},
    loadIdentities(io.env),
  );
  for (const n of notes) writeLine(io.stderr, `psy node: ${n}`);
  const parts = [values.ssh && 'ssh', values.age && 'age', values.psynet && 'psynet'].filter(Boolean);
  writeLine(io.stdout, `node ${name}: rotated ${parts.length ? parts.join(', ') : 'all keys'}`);
  await printPublic(io, record);
  return 0;
}

async function cmdRekey(argv: string[], io: CommandIo): Promise<number> {
  const {values, positionals} = parseCommandArgs('node', argv, {config: {type: 'string'}});
  const p = await loadNodeProject(io.cwd, values.config);
  const recipients = requireRecipients(p.settings);
  const names = positionals.length ? positionals : p.nodes.names();
  for (const n of names) p.nodes.read(n);
  const ids = loadIdentities(io.env);
  // decrypt every node first: a node the identity cannot open stops the whole run unwritten
  for (const n of names) await p.nodes.secrets(n, ids);
  for (const n of names) await rekeyNode(p.nodes, recipients, n, ids);
  writeLine(
    io.stdout,
    `re-encrypted ${names.length} node${names.length === 1 ? '' : 's'} to ${recipients.length} recipient${recipients.length === 1 ? '' : 's'}`,
  );
  return 0;
}
