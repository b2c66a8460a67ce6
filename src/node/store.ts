import {existsSync, readdirSync, readFileSync, statSync} from 'node:fs';
import {mkdir, readFile, rename, rm, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {isPsyError, PsyError} from '../errors.js';
import {parseTar, tarBytes, type TarEntry} from '../image/tar.js';
import {decrypt, encrypt, isRecipient, type Identities} from './age.js';
import type {NodeSettings} from './settings.js';

/**
 * Nodes in the repository: `nodes/NAME/node.json` holds what is public (MAC, psynet
 * address, public keys, the psynet certificate), `nodes/NAME/secrets.age` the node's
 * secret files as an uncompressed tar encrypted to the operators' age recipients.
 * The tar is exactly the sectar's content, so `age -d -i KEY secrets.age | tar -x`
 * gives the files an operator would put on the psyops-secret partition.
 */

export const NODE_FILE = 'node.json';
export const SECRETS_FILE = 'secrets.age';

/** The secret partition's file names, as the node's boot script reads them. */
export const SECRET_NAMES = {
  nodename: 'nodename',
  mactab: 'mactab',
  sshHostKey: 'ssh_host_ed25519_key',
  ageKey: 'age.key',
  interfaces: 'network.interfaces',
  psynetCrt: 'psynet.host.crt',
  psynetKey: 'psynet.host.key',
} as const;

export interface NodeRecord {
  readonly name: string;
  readonly mac: string;
  readonly psynet?: {readonly ip: string; readonly groups: readonly string[]};
  readonly flavorText?: string;
  readonly public: {
    /** OpenSSH public host key line. */
    readonly ssh: string;
    /** The node's age recipient. */
    readonly age: string;
    /** The node's psynet certificate (PEM); public. */
    readonly psynetCert?: string;
  };
}

export type SecretFiles = Map<string, Buffer>;

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

export function checkNodeName(name: string): string {
  if (!NAME.test(name)) throw new PsyError('bad-node-name', `node name '${name}' must be a host name: lower-case letters, digits and '-', at most 63`);
  return name;
}

/** A unicast MAC, lower-case with colons. */
export function normalizeMac(mac: string): string {
  const m = mac.trim().toLowerCase().replace(/-/g, ':');
  if (!MAC.test(m)) throw new PsyError('bad-mac', `'${mac}' is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  if (parseInt(m.slice(0, 2), 16) & 1) throw new PsyError('bad-mac', `${m} is a multicast address; a NIC's MAC has the lowest bit of the first byte clear`);
  return m;
}

/** An IPv4 address with its network prefix (10.10.10.5/22), as nebula-cert takes it. */
export function normalizeCidr(cidr: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!m || m.slice(1, 5).some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0'))) || Number(m[5]) > 32 || Number(m[5]) < 1) {
    throw new PsyError('bad-psynet-ip', `'${cidr}' is not an IPv4 address with its prefix (e.g. 10.10.10.5/22)`);
  }
  return `${m.slice(1, 5).map(Number).join('.')}/${Number(m[5])}`;
}

export function ipOf(cidr: string): string {
  return cidr.split('/')[0]!;
}

export class NodeStore {
  readonly dir: string;
  constructor(
    readonly root: string,
    readonly settings: NodeSettings,
  ) {
    this.dir = join(root, settings.dir);
  }

  /** Project-relative path of a node's file, for messages. */
  rel(name: string, file?: string): string {
    return file === undefined ? `${this.settings.dir}/${name}` : `${this.settings.dir}/${name}/${file}`;
  }

  names(): string[] {
    return listNodeNames(this.dir);
  }

  has(name: string): boolean {
    return existsSync(join(this.dir, name, NODE_FILE));
  }

  /** The node's record; a missing node or a damaged node.json is one line naming it. */
  read(name: string): NodeRecord {
    checkNodeName(name);
    const file = join(this.dir, name, NODE_FILE);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      const known = this.names();
      throw new PsyError('unknown-node', `unknown node '${name}' (no ${this.rel(name, NODE_FILE)}; nodes: ${known.length ? known.join(', ') : 'none'})`);
    }
    return parseRecord(text, this.rel(name, NODE_FILE), name);
  }

  all(): NodeRecord[] {
    return this.names().map((n) => this.read(n));
  }

  /** Decrypt the node's secrets in memory. */
  async secrets(name: string, identities: Identities): Promise<SecretFiles> {
    const rel = this.rel(name, SECRETS_FILE);
    let text: string;
    try {
      text = await readFile(join(this.dir, name, SECRETS_FILE), 'utf8');
    } catch {
      throw new PsyError('missing-secrets', `${rel} is missing`);
    }
    return unsealSecrets(text, identities, rel);
  }

  /**
   * Write a node (both files) in one step: the new folder is assembled beside the old
   * and swapped in by renames, so a failure leaves the previous node as it was.
   */
  async write(record: NodeRecord, files: SecretFiles, recipients: readonly string[], epoch: number): Promise<void> {
    const sealed = await sealSecrets(files, recipients, epoch);
    const final = join(this.dir, record.name);
    const tmp = join(this.dir, `.${record.name}.new-${process.pid}`);
    const old = join(this.dir, `.${record.name}.old-${process.pid}`);
    await mkdir(this.dir, {recursive: true});
    await rm(tmp, {recursive: true, force: true});
    try {
      await mkdir(tmp);
      await writeFile(join(tmp, NODE_FILE), formatRecord(record));
      await writeFile(join(tmp, SECRETS_FILE), sealed);
      if (existsSync(final)) {
        await rename(final, old);
        await rename(tmp, final);
        await rm(old, {recursive: true, force: true});
      } else {
        await rename(tmp, final);
      }
    } finally {
      await rm(tmp, {recursive: true, force: true});
    }
  }

  async remove(name: string): Promise<void> {
    this.read(name);
    const old = join(this.dir, `.${name}.rm-${process.pid}`);
    await rename(join(this.dir, name), old);
    await rm(old, {recursive: true, force: true});
  }

  /** Refuse a MAC or psynet address another node already has. */
  checkUnique(name: string, mac: string, psynetIp: string | undefined): void {
    for (const other of this.all()) {
      if (other.name === name) continue;
      if (other.mac === mac) throw new PsyError('duplicate-mac', `MAC ${mac} is already used by node '${other.name}' (${this.rel(other.name, NODE_FILE)})`);
      if (psynetIp !== undefined && other.psynet && ipOf(other.psynet.ip) === ipOf(psynetIp)) {
        throw new PsyError(
          'duplicate-psynet-ip',
          `psynet address ${ipOf(psynetIp)} is already used by node '${other.name}' (${this.rel(other.name, NODE_FILE)})`,
        );
      }
    }
  }
}

/** Node folders (those with a node.json), sorted; synchronous so a config can call it. */
export function listNodeNames(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => NAME.test(n) && statSync(join(dir, n, NODE_FILE), {throwIfNoEntry: false})?.isFile() === true).sort();
}

export function formatRecord(r: NodeRecord): string {
  const ordered: NodeRecord = {
    name: r.name,
    mac: r.mac,
    ...(r.psynet ? {psynet: {ip: r.psynet.ip, groups: [...r.psynet.groups]}} : {}),
    ...(r.flavorText !== undefined ? {flavorText: r.flavorText} : {}),
    public: {ssh: r.public.ssh, age: r.public.age, ...(r.public.psynetCert ? {psynetCert: r.public.psynetCert} : {})},
  };
  return JSON.stringify(ordered, null, 2) + '\n';
}

export function parseRecord(text: string, where: string, name: string): NodeRecord {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new PsyError('corrupt-node', `${where}: not JSON (${(err as Error).message})`);
  }
  const bad = (field: string, why: string): never => {
    throw new PsyError('corrupt-node', `${where}: ${field} ${why}`);
  };
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad('the file', 'must hold an object');
  if (o['name'] !== name) bad('name', `must be '${name}' (the folder's name)`);
  if (typeof o['mac'] !== 'string') bad('mac', 'is missing');
  let mac: string;
  try {
    mac = normalizeMac(o['mac'] as string);
  } catch (err) {
    return bad('mac', (err as Error).message);
  }
  let psynet: NodeRecord['psynet'];
  if (o['psynet'] !== undefined) {
    const p = o['psynet'] as Record<string, unknown>;
    if (typeof p !== 'object' || p === null || typeof p['ip'] !== 'string') bad('psynet.ip', 'is missing');
    const groups = p['groups'] ?? [];
    if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string')) bad('psynet.groups', 'must be a list of names');
    let ip: string;
    try {
      ip = normalizeCidr(p['ip'] as string);
    } catch (err) {
      return bad('psynet.ip', (err as Error).message);
    }
    psynet = {ip, groups: groups as string[]};
  }
  if (o['flavorText'] !== undefined && typeof o['flavorText'] !== 'string') bad('flavorText', 'must be a string');
  const pub = o['public'] as Record<string, unknown> | undefined;
  if (typeof pub !== 'object' || pub === null) return bad('public', 'is missing');
  if (typeof pub['ssh'] !== 'string' || !/^ssh-ed25519 [A-Za-z0-9+/=]+( .*)?$/.test(pub['ssh'])) bad('public.ssh', 'is not an ssh-ed25519 public key');
  if (typeof pub['age'] !== 'string' || !isRecipient(pub['age'])) bad('public.age', 'is not an age recipient');
  if (pub['psynetCert'] !== undefined && typeof pub['psynetCert'] !== 'string') bad('public.psynetCert', 'must be a PEM certificate');
  return {
    name,
    mac,
    ...(psynet ? {psynet} : {}),
    ...(o['flavorText'] !== undefined ? {flavorText: o['flavorText'] as string} : {}),
    public: {ssh: pub['ssh'] as string, age: pub['age'] as string, ...(pub['psynetCert'] ? {psynetCert: pub['psynetCert'] as string} : {})},
  };
}

/** The secret files as a sorted tar (0600 files, fixed mtime), encrypted to the recipients. */
export async function sealSecrets(files: SecretFiles, recipients: readonly string[], epoch: number): Promise<string> {
  return encrypt(secretsTar(files, epoch), recipients);
}

export function secretsTar(files: SecretFiles, epoch: number): Buffer {
  const entries: TarEntry[] = [...files.keys()].sort().map((path) => ({type: 'data', path, mode: 0o600, data: files.get(path)!}));
  return tarBytes(entries, epoch);
}

export async function unsealSecrets(text: string, identities: Identities, what: string): Promise<SecretFiles> {
  const plain = Buffer.from(await decrypt(text, identities, what));
  const files: SecretFiles = new Map();
  try {
    parseTar(plain, what, (m, data) => {
      if (m.type !== 'file' || m.path.includes('/')) throw new PsyError('corrupt-secrets', `${what}: ${m.path} is not a flat file`);
      files.set(m.path, Buffer.from(data));
    });
  } catch (err) {
    if (isPsyError(err) && err.code === 'corrupt-secrets') throw err;
    throw new PsyError('corrupt-secrets', `${what}: the decrypted content is not a tar of secret files (${(err as Error).message})`);
  }
  if (!files.has(SECRET_NAMES.nodename)) throw new PsyError('corrupt-secrets', `${what}: has no ${SECRET_NAMES.nodename}`);
  return files;
}
