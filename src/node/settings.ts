import {PsyError} from '../errors.js';
import {isRecipient} from './age.js';

/** `settings.nodes` in build.config.ts. */
export interface NodeSettings {
  /** Folder of the nodes, one subfolder each (default `nodes`). */
  readonly dir: string;
  /** Folder of the psynet CA (default `psynet`). */
  readonly psynetDir: string;
  /** The operators' age recipients (age1...): node secrets and the CA key are encrypted to them. */
  readonly recipients: readonly string[];
  /** How `psy deploy` reaches nodes: ssh user (default root), port, extra ssh options. */
  readonly ssh: {readonly user: string; readonly port?: number; readonly options: readonly string[]};
  /** Node name → host `psy deploy` connects to (else the node's psynet IP). */
  readonly hosts: Readonly<Record<string, string>>;
  /** Nodes that cannot reach the bucket: `psy deploy` copies the signed ostar to them over ssh. */
  readonly copy: readonly string[];
}

const KNOWN = new Set(['dir', 'psynetDir', 'recipients', 'ssh', 'hosts', 'copy']);

export function parseNodeSettings(raw: unknown): NodeSettings {
  const where = 'settings.nodes';
  if (raw !== undefined && (typeof raw !== 'object' || raw === null || Array.isArray(raw))) {
    throw new PsyError('bad-config', `${where} must be an object`);
  }
  const o = (raw ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw new PsyError('bad-config', `${where}.${k}: unknown setting (known: ${[...KNOWN].join(', ')})`);
  const str = (k: string, d: string): string => {
    const v = o[k] ?? d;
    if (typeof v !== 'string' || v === '' || v.split(/[\\/]/).includes('..'))
      throw new PsyError('bad-config', `${where}.${k} must be a folder inside the project`);
    return v;
  };
  const recipients = o['recipients'] ?? [];
  if (!Array.isArray(recipients)) throw new PsyError('bad-config', `${where}.recipients must be a list of age recipients (age1...)`);
  recipients.forEach((r, i) => {
    if (typeof r !== 'string' || !isRecipient(r.trim())) throw new PsyError('bad-config', `${where}.recipients[${i}] is not an age X25519 recipient (age1...)`);
  });
  const ssh = (o['ssh'] ?? {}) as Record<string, unknown>;
  if (typeof ssh !== 'object' || ssh === null || Array.isArray(ssh)) throw new PsyError('bad-config', `${where}.ssh must be an object`);
  const user = ssh['user'] ?? 'root';
  if (typeof user !== 'string' || !/^[a-z_][a-z0-9_-]*$/i.test(user)) throw new PsyError('bad-config', `${where}.ssh.user must be a user name`);
  const port = ssh['port'];
  if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535))
    throw new PsyError('bad-config', `${where}.ssh.port must be a port number`);
  const options = ssh['options'] ?? [];
  if (!Array.isArray(options) || options.some((x) => typeof x !== 'string'))
    throw new PsyError('bad-config', `${where}.ssh.options must be a list of strings (ssh arguments)`);
  const hosts = (o['hosts'] ?? {}) as Record<string, unknown>;
  if (typeof hosts !== 'object' || hosts === null || Array.isArray(hosts)) throw new PsyError('bad-config', `${where}.hosts must map node names to hosts`);
  for (const [n, h] of Object.entries(hosts)) {
    if (typeof h !== 'string' || h === '' || h.startsWith('-')) throw new PsyError('bad-config', `${where}.hosts.${n} must be a host name or address`);
  }
  const copy = o['copy'] ?? [];
  if (!Array.isArray(copy) || copy.some((x) => typeof x !== 'string')) throw new PsyError('bad-config', `${where}.copy must be a list of node names`);
  return {
    dir: str('dir', 'nodes'),
    psynetDir: str('psynetDir', 'psynet'),
    recipients: (recipients as string[]).map((r) => r.trim()),
    ssh: {user, ...(port === undefined ? {} : {port}), options: options as string[]},
    hosts: hosts as Record<string, string>,
    copy: copy as string[],
  };
}

/** The recipients, or a one-line error saying where to list them. */
export function requireRecipients(s: NodeSettings): readonly string[] {
  if (s.recipients.length === 0) {
    throw new PsyError(
      'no-recipients',
      "settings.nodes.recipients is empty: list the operators' age recipients (age-keygen -y KEYFILE prints one) in build.config.ts",
    );
  }
  return s.recipients;
}
