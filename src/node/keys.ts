import {createHash, generateKeyPairSync} from 'node:crypto';
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {runTool, type ToolRunner} from '../tools/run.js';

/**
 * The keys a node is made of. The SSH host key comes from ssh-keygen and the psynet CA
 * from nebula-cert, each written into a private (0700) scratch folder that is removed
 * at once; a node's psynet key pair is made in-process (X25519, nebula's PEM) so that
 * nebula-cert only ever sees its public half. Signing needs the CA key as a file: it
 * is written into such a folder (a tmpfs under XDG_RUNTIME_DIR when there is one) for
 * the one nebula-cert call. (Not /dev/stdin: Node's stdio pipes are sockets, which
 * cannot be opened by path.)
 */

/** A scratch folder only we can read, removed after `fn`. XDG_RUNTIME_DIR (a tmpfs) when there is one. */
async function withPrivateDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const base = process.env['XDG_RUNTIME_DIR'] || tmpdir();
  const dir = await mkdtemp(join(base, 'psy-node-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, {recursive: true, force: true});
  }
}

export interface SshHostKey {
  readonly privateKey: Buffer;
  /** `ssh-ed25519 AAAA... root@NAME` */
  readonly publicKey: string;
}

export async function newSshHostKey(name: string, run: ToolRunner = runTool): Promise<SshHostKey> {
  return withPrivateDir(async (dir) => {
    const file = join(dir, 'ssh_host_ed25519_key');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${name}`, '-f', file]);
    return {privateKey: await readFile(file), publicKey: (await readFile(`${file}.pub`, 'utf8')).trim()};
  });
}

/** `SHA256:...` as `ssh-keygen -l` prints it: the unpadded base64 SHA-256 of the key blob. */
export function sshFingerprint(publicKeyLine: string): string {
  const blob = publicKeyLine.trim().split(/\s+/)[1];
  if (blob === undefined) throw new PsyError('bad-ssh-key', `not an OpenSSH public key: ${publicKeyLine.slice(0, 40)}`);
  return 'SHA256:' + createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '');
}

function pem(type: string, raw: Buffer): string {
  return `-----BEGIN ${type}-----\n${raw.toString('base64')}\n-----END ${type}-----\n`;
}

/** A nebula host key pair in nebula's PEM form. */
export function newPsynetKeyPair(): {privateKey: string; publicKey: string} {
  const {privateKey, publicKey} = generateKeyPairSync('x25519');
  const d = Buffer.from(privateKey.export({format: 'jwk'}).d!, 'base64url');
  const x = Buffer.from(publicKey.export({format: 'jwk'}).x!, 'base64url');
  return {privateKey: pem('NEBULA X25519 PRIVATE KEY', d), publicKey: pem('NEBULA X25519 PUBLIC KEY', x)};
}

export interface PsynetCa {
  readonly cert: string;
  readonly key: Buffer;
}

export const DEFAULT_CA_NAME = 'Psynet Nebula Certificate Authority';

/** A psynet CA (nebula-cert ca); 100 years by default, as the original's. */
export async function newPsynetCa(name: string, duration: string, run: ToolRunner = runTool): Promise<PsynetCa> {
  return withPrivateDir(async (dir) => {
    await run('nebula-cert', ['ca', '-name', name, '-duration', duration, '-out-crt', join(dir, 'ca.crt'), '-out-key', join(dir, 'ca.key')]);
    return {cert: await readFile(join(dir, 'ca.crt'), 'utf8'), key: await readFile(join(dir, 'ca.key'))};
  });
}

/** Sign a host certificate for `publicKey` with the CA. */
export async function signPsynetCert(
  ca: PsynetCa,
  host: {name: string; ip: string; groups: readonly string[]; publicKey: string},
  run: ToolRunner = runTool,
): Promise<string> {
  return withPrivateDir(async (dir) => {
    await writeFile(join(dir, 'ca.crt'), ca.cert);
    await writeFile(join(dir, 'ca.key'), ca.key, {mode: 0o600});
    await writeFile(join(dir, 'host.pub'), host.publicKey);
    const args = [
      'sign',
      '-ca-crt',
      join(dir, 'ca.crt'),
      '-ca-key',
      join(dir, 'ca.key'),
      '-in-pub',
      join(dir, 'host.pub'),
      '-name',
      host.name,
      '-ip',
      host.ip,
      '-out-crt',
      join(dir, 'host.crt'),
    ];
    if (host.groups.length) args.push('-groups', host.groups.join(','));
    await run('nebula-cert', args);
    return readFile(join(dir, 'host.crt'), 'utf8');
  });
}

export interface PsynetCertDetails {
  readonly name: string;
  readonly ips: readonly string[];
  readonly groups: readonly string[];
  readonly isCa: boolean;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly issuer: string;
  readonly publicKey: string;
  readonly fingerprint: string;
}

/** What `nebula-cert print -json` says about a certificate. */
export async function psynetCertDetails(cert: string, run: ToolRunner = runTool): Promise<PsynetCertDetails> {
  const {stdout} = await withPrivateDir(async (dir) => {
    await writeFile(join(dir, 'cert.crt'), cert);
    return run('nebula-cert', ['print', '-json', '-path', join(dir, 'cert.crt')], {captureStdout: true});
  });
  const first = stdout
    .toString()
    .split('\n')
    .find((l) => l.trim() !== '');
  try {
    const j = JSON.parse(first ?? '') as {details: Omit<PsynetCertDetails, 'fingerprint'>; fingerprint: string};
    const d = j.details;
    return {
      name: d.name,
      ips: d.ips,
      groups: d.groups,
      isCa: d.isCa,
      notBefore: d.notBefore,
      notAfter: d.notAfter,
      issuer: d.issuer,
      publicKey: d.publicKey,
      fingerprint: j.fingerprint,
    };
  } catch {
    throw new PsyError('bad-psynet-cert', `nebula-cert print did not describe the certificate: ${(first ?? '').slice(0, 80)}`);
  }
}

/** The raw public key (hex) of a nebula PEM public or private key. */
export function psynetPublicHex(publicKeyPem: string): string {
  const b64 = publicKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(b64, 'base64').toString('hex');
}
