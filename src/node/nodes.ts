import {createPrivateKey, createPublicKey} from 'node:crypto';
import {PsyError} from '../errors.js';
import {newIdentity, recipientOf, type Identities} from './age.js';
import {newPsynetKeyPair, newSshHostKey, psynetPublicHex, signPsynetCert} from './keys.js';
import type {PsynetStore} from './psynet.js';
import {checkNodeName, normalizeCidr, normalizeMac, SECRET_NAMES, type NodeRecord, type NodeStore, type SecretFiles} from './store.js';

/**
 * Making and changing nodes: every secret a node has is generated here, and every
 * change is written in one step (see NodeStore.write).
 */

/** The secrets tar's member mtime: fixed, so sealing the same files gives the same tar. */
export const SECRETS_EPOCH = 0;

export const DEFAULT_PSYNET_GROUPS = ['psyopsOS'];

/** DHCP on psy0 (the NIC mactab names), as the original's nodes have it. */
export function dhcpInterfaces(): string {
  return 'auto lo\niface lo inet loopback\n\nauto psy0\niface psy0 inet dhcp\n';
}

export interface NewNodeOptions {
  readonly name: string;
  readonly mac: string;
  readonly psynetIp?: string;
  readonly psynetGroups?: readonly string[];
  readonly flavorText?: string;
  /** network.interfaces content; DHCP on psy0 when omitted. */
  readonly interfaces?: string;
}

export interface NodeChange {
  readonly record: NodeRecord;
  /** Notes for the operator (e.g. psynet not signed for want of a CA). */
  readonly notes: readonly string[];
}

export async function newNode(
  store: NodeStore,
  psynet: PsynetStore,
  recipients: readonly string[],
  o: NewNodeOptions,
  identities: () => Identities,
): Promise<NodeChange> {
  const name = checkNodeName(o.name);
  if (store.has(name)) throw new PsyError('exists', `node '${name}' already exists (${store.rel(name)}); use psy node rotate to renew its keys`);
  const mac = normalizeMac(o.mac);
  const ip = o.psynetIp === undefined ? undefined : normalizeCidr(o.psynetIp);
  const groups = checkGroups(o.psynetGroups ?? DEFAULT_PSYNET_GROUPS);
  store.checkUnique(name, mac, ip);
  const notes: string[] = [];
  // The CA is needed only for a psynet address; check it before generating anything.
  const ca = ip !== undefined && psynet.exists() ? await psynet.load(identities()) : undefined;
  if (ip !== undefined && ca === undefined) notes.push(`psynet: no CA yet, ${ip} recorded but not signed (psy psynet ca init, then psy psynet sign ${name})`);
  const ssh = await newSshHostKey(name);
  const ageId = await newIdentity();
  const files: SecretFiles = new Map([
    [SECRET_NAMES.nodename, Buffer.from(name + '\n')],
    [SECRET_NAMES.mactab, Buffer.from(`psy0 ${mac}\n`)],
    [SECRET_NAMES.sshHostKey, ssh.privateKey],
    [SECRET_NAMES.ageKey, Buffer.from(ageKeyFile(ageId.identity, ageId.recipient))],
    [SECRET_NAMES.interfaces, Buffer.from(o.interfaces ?? dhcpInterfaces())],
  ]);
  let psynetCert: string | undefined;
  if (ca !== undefined && ip !== undefined) {
    const kp = newPsynetKeyPair();
    psynetCert = await signPsynetCert(ca, {name, ip, groups, publicKey: kp.publicKey});
    files.set(SECRET_NAMES.psynetKey, Buffer.from(kp.privateKey));
    files.set(SECRET_NAMES.psynetCrt, Buffer.from(psynetCert));
  }
  const record: NodeRecord = {
    name,
    mac,
    ...(ip === undefined ? {} : {psynet: {ip, groups}}),
    ...(o.flavorText === undefined ? {} : {flavorText: o.flavorText}),
    public: {ssh: ssh.publicKey, age: ageId.recipient, ...(psynetCert ? {psynetCert} : {})},
  };
  await store.write(record, files, recipients, SECRETS_EPOCH);
  return {record, notes};
}

export interface RotateOptions {
  readonly ssh: boolean;
  readonly age: boolean;
  readonly psynet: boolean;
}

/** New keys for the chosen parts (all when none is chosen); the rest stays as it was. */
export async function rotateNode(
  store: NodeStore,
  psynet: PsynetStore,
  recipients: readonly string[],
  name: string,
  which: RotateOptions,
  identities: Identities,
): Promise<NodeChange> {
  const old = store.read(name);
  const all = !which.ssh && !which.age && !which.psynet;
  const files = await store.secrets(name, identities);
  let pub = {...old.public};
  const notes: string[] = [];
  if (all || which.psynet) {
    if (old.psynet === undefined) {
      if (which.psynet) throw new PsyError('no-psynet-ip', `node '${name}' has no psynet address (psy psynet sign ${name} --ip CIDR gives it one)`);
    } else if (!psynet.exists()) {
      if (which.psynet) throw new PsyError('no-psynet-ca', `no psynet CA (${psynet.rel('ca.crt')} is missing): run psy psynet ca init`);
      notes.push('psynet: no CA, certificate not renewed');
    }
  }
  const ca = (all || which.psynet) && old.psynet !== undefined && psynet.exists() ? await psynet.load(identities) : undefined;
  if (all || which.ssh) {
    const ssh = await newSshHostKey(name);
    files.set(SECRET_NAMES.sshHostKey, ssh.privateKey);
    pub = {...pub, ssh: ssh.publicKey};
  }
  if (all || which.age) {
    const id = await newIdentity();
    files.set(SECRET_NAMES.ageKey, Buffer.from(ageKeyFile(id.identity, id.recipient)));
    pub = {...pub, age: id.recipient};
  }
  if (ca !== undefined && old.psynet !== undefined) {
    const kp = newPsynetKeyPair();
    const cert = await signPsynetCert(ca, {name, ip: old.psynet.ip, groups: old.psynet.groups, publicKey: kp.publicKey});
    files.set(SECRET_NAMES.psynetKey, Buffer.from(kp.privateKey));
    files.set(SECRET_NAMES.psynetCrt, Buffer.from(cert));
    pub = {...pub, psynetCert: cert};
  }
  const record: NodeRecord = {...old, public: pub};
  await store.write(record, files, recipients, SECRETS_EPOCH);
  return {record, notes};
}

/**
 * Sign (or re-sign) the node's psynet certificate: with `ip`/`groups` it gets (or
 * changes) its address; its existing key is kept, a new one made when it has none.
 */
export async function signNode(
  store: NodeStore,
  psynet: PsynetStore,
  recipients: readonly string[],
  name: string,
  o: {ip?: string; groups?: readonly string[]},
  identities: Identities,
): Promise<NodeRecord> {
  const old = store.read(name);
  const ip = o.ip !== undefined ? normalizeCidr(o.ip) : old.psynet?.ip;
  if (ip === undefined) throw new PsyError('no-psynet-ip', `node '${name}' has no psynet address: pass --ip CIDR`);
  const groups = checkGroups(o.groups ?? old.psynet?.groups ?? DEFAULT_PSYNET_GROUPS);
  store.checkUnique(name, old.mac, ip);
  const ca = await psynet.load(identities);
  const files = await store.secrets(name, identities);
  const existing = files.get(SECRET_NAMES.psynetKey);
  let publicKey: string;
  if (existing !== undefined) {
    publicKey = psynetPublicOf(existing.toString('utf8'), store.rel(name, 'secrets.age'));
  } else {
    const kp = newPsynetKeyPair();
    files.set(SECRET_NAMES.psynetKey, Buffer.from(kp.privateKey));
    publicKey = kp.publicKey;
  }
  const cert = await signPsynetCert(ca, {name, ip, groups, publicKey});
  files.set(SECRET_NAMES.psynetCrt, Buffer.from(cert));
  const record: NodeRecord = {...old, psynet: {ip, groups}, public: {...old.public, psynetCert: cert}};
  await store.write(record, files, recipients, SECRETS_EPOCH);
  return record;
}

/** Re-encrypt a node's secrets to the current recipients (after an operator joins or leaves). */
export async function rekeyNode(store: NodeStore, recipients: readonly string[], name: string, identities: Identities): Promise<void> {
  const record = store.read(name);
  const files = await store.secrets(name, identities);
  await store.write(record, files, recipients, SECRETS_EPOCH);
}

/** age-keygen's file format, without the creation time (the file is sealed, its bytes should not say when). */
function ageKeyFile(identity: string, recipient: string): string {
  return `# public key: ${recipient}\n${identity}\n`;
}

/** The node's own age identity's recipient, checked against its secrets (for show). */
export async function ageRecipientOf(files: SecretFiles): Promise<string | undefined> {
  const key = files
    .get(SECRET_NAMES.ageKey)
    ?.toString('utf8')
    .split('\n')
    .find((l) => l.startsWith('AGE-SECRET-KEY-'));
  return key === undefined ? undefined : recipientOf(key.trim());
}

function psynetPublicOf(privatePem: string, where: string): string {
  const raw = Buffer.from(psynetPublicHex(privatePem), 'hex');
  if (raw.length !== 32) throw new PsyError('corrupt-secrets', `${where}: ${SECRET_NAMES.psynetKey} is not a nebula X25519 key`);
  // PKCS#8 wrapping of a raw X25519 private key, so node:crypto derives its public half.
  const der = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]);
  const x = createPublicKey(createPrivateKey({key: der, format: 'der', type: 'pkcs8'})).export({format: 'jwk'}).x!;
  return `-----BEGIN NEBULA X25519 PUBLIC KEY-----\n${Buffer.from(x, 'base64url').toString('base64')}\n-----END NEBULA X25519 PUBLIC KEY-----\n`;
}

function checkGroups(groups: readonly string[]): string[] {
  const out = groups
    .flatMap((g) => g.split(','))
    .map((g) => g.trim())
    .filter((g) => g !== '');
  for (const g of out) if (!/^[A-Za-z0-9_.-]+$/.test(g)) throw new PsyError('bad-psynet-group', `psynet group '${g}' must be letters, digits and _ . -`);
  return out;
}
