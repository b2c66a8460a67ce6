import {chmod, lstat, mkdir, readFile, rm, symlink, writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {parsePublicKey} from '../sign/keys.js';
import {shellQuote} from '../tools/shell-quote.js';

/**
 * What makes an installed Alpine root a psyopsOS node, applied to the staged root before
 * it becomes the squashfs: the OpenRC runlevels (as `rc-update add` makes them), root's
 * way in (password hash or locked, authorized_keys), the update trust
 * (/etc/psyopsOS/minisign.pubkey and /etc/psyopsOS/repository) and the settings file the
 * boot-time individuation script reads (/etc/psyopsOS/node.conf).
 */

export interface NodeRootSettings {
  /** OpenRC runlevel → services, in order. */
  readonly runlevels: Readonly<Record<string, readonly string[]>>;
  /** crypt(3) hash for root, or null: the account stays locked. */
  readonly rootPasswordHash: string | null;
  /** Serial consoles the boot gives a getty when the device is present, and their speed. */
  readonly serialConsoles: readonly string[];
  readonly serialBaud: number;
  /** Hostname of a node without a psyops-secret partition (also /etc/hostname). */
  readonly defaultNodename: string;
  /** Update repository URL written to /etc/psyopsOS/repository; null: none. */
  readonly updateRepository: string | null;
}

export interface NodeRootInputs {
  /** [file name for messages, text] of each authorized_keys source, in settings order. */
  readonly authorizedKeys: ReadonlyArray<readonly [string, string]>;
  /** The minisign public key's text, when one is configured. */
  readonly updatePubkey?: readonly [string, string] | undefined;
}

/**
 * Which package usually ships /etc/init.d/<service> on Alpine, for the message when a
 * declared service is missing from the installed world.
 */
export const servicePackages: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    [
      'bootmisc',
      'cgroups',
      'devfs',
      'dmesg',
      'firstboot',
      'fsck',
      'hostname',
      'hwclock',
      'hwdrivers',
      'killprocs',
      'local',
      'localmount',
      'loopback',
      'machine-id',
      'modloop',
      'modules',
      'mount-ro',
      'mtab',
      'net-online',
      'networking',
      'netmount',
      'numlock',
      'osclock',
      'procfs',
      'root',
      'runsvdir',
      'savecache',
      'seedrng',
      'staticroute',
      'swap',
      'swclock',
      'sysctl',
      'sysfs',
      'sysfsconf',
      'termencoding',
      'urandom',
    ].map((s) => [s, 'openrc']),
  ),
  ...Object.fromEntries(['acpid', 'crond', 'klogd', 'loadkmap', 'ntpd', 'rdate', 'syslog', 'watchdog'].map((s) => [s, 'busybox-openrc'])),
  mdev: 'busybox-mdev-openrc',
  sshd: 'openssh-server',
  dropbear: 'dropbear-openrc',
  chronyd: 'chrony',
  'syslog-ng': 'syslog-ng',
  udev: 'eudev',
  'udev-trigger': 'eudev',
  nebula: 'nebula',
};

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function bad(field: string, what: string): never {
  throw new PsyError('bad-config', `settings.alpine.${field}: ${what}`);
}

/** Checks the settings a user writes; every problem is one line naming the field. */
export function validateNodeRootSettings(s: NodeRootSettings): void {
  if (s.runlevels === null || typeof s.runlevels !== 'object' || Array.isArray(s.runlevels)) bad('runlevels', 'must be an object: runlevel → service names');
  for (const [level, services] of Object.entries(s.runlevels)) {
    if (!NAME.test(level)) bad('runlevels', `"${level}" is not a runlevel name`);
    if (!Array.isArray(services)) bad(`runlevels.${level}`, 'must be a list of service names');
    for (const svc of services) if (typeof svc !== 'string' || !NAME.test(svc)) bad(`runlevels.${level}`, `"${String(svc)}" is not a service name`);
    const dup = services.find((x, i) => services.indexOf(x) !== i);
    if (dup) bad(`runlevels.${level}`, `service ${dup} is named twice`);
  }
  const h = s.rootPasswordHash;
  if (h !== null && (typeof h !== 'string' || !/^\$[0-9a-z]+\$[!-~]+$/.test(h) || h.includes(':'))) {
    bad('rootPasswordHash', 'must be a crypt(3) hash such as the output of `mkpasswd -m sha-512` (or null: root stays locked)');
  }
  for (const tty of s.serialConsoles)
    if (typeof tty !== 'string' || !/^tty[A-Za-z0-9]+$/.test(tty)) bad('serialConsoles', `"${String(tty)}" is not a tty name`);
  if (!Number.isInteger(s.serialBaud) || s.serialBaud <= 0) bad('serialBaud', `${String(s.serialBaud)} is not a baud rate`);
  if (typeof s.defaultNodename !== 'string' || !/^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(s.defaultNodename)) {
    bad('defaultNodename', `"${String(s.defaultNodename)}" is not a host name`);
  }
  if (s.updateRepository !== null && (typeof s.updateRepository !== 'string' || !/^(https?|s3):\/\/\S+$/.test(s.updateRepository))) {
    bad('updateRepository', `"${String(s.updateRepository)}" is not an http(s):// or s3:// URL`);
  }
}

/** One authorized_keys source: only public keys, one per line; comments and blank lines pass. */
export function checkAuthorizedKeys(file: string, text: string): string[] {
  if (/PRIVATE KEY/.test(text)) throw new PsyError('bad-config', `settings.alpine.rootAuthorizedKeys: ${file} holds a private key, not public keys`);
  const keys: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    // options may precede the key type (from="...",no-pty ssh-ed25519 AAAA...)
    if (!/(^|\s)(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+AAAA[A-Za-z0-9+/]+=*(\s|$)/.test(line)) {
      throw new PsyError('bad-config', `settings.alpine.rootAuthorizedKeys: ${file} line ${i + 1} is not an SSH public key`);
    }
    keys.push(line);
  });
  return keys;
}

async function exists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined)) !== undefined;
}

/**
 * Applies the node settings to a staged root (the installed world with the overlays on
 * top). A declared service whose /etc/init.d script is not there is refused before
 * anything is written.
 */
export async function applyNodeRoot(root: string, s: NodeRootSettings, inputs: NodeRootInputs): Promise<void> {
  validateNodeRootSettings(s);
  for (const [level, services] of Object.entries(s.runlevels)) {
    for (const svc of services) {
      if (!(await exists(join(root, 'etc/init.d', svc)))) {
        const pkg = servicePackages[svc];
        throw new PsyError(
          'missing-service',
          `settings.alpine.runlevels.${level}: service ${svc} has no /etc/init.d/${svc} in the installed world` +
            (pkg
              ? ` (it usually comes from ${pkg}: add that to settings.alpine.world)`
              : ' (add the package that provides it to settings.alpine.world, or the script to an overlay)'),
        );
      }
    }
  }
  const keys = inputs.authorizedKeys.flatMap(([file, text]) => checkAuthorizedKeys(file, text));
  const pubkey = inputs.updatePubkey;
  if (pubkey) parsePublicKey(pubkey[1], `settings.alpine.updatePubkey (${pubkey[0]})`);

  // OpenRC: `rc-update add SVC LEVEL` makes /etc/runlevels/LEVEL/SVC -> /etc/init.d/SVC
  // (the empty level folders the openrc package ships stay as they are)
  for (const [level, services] of Object.entries(s.runlevels)) {
    await mkdir(join(root, 'etc/runlevels', level), {recursive: true, mode: 0o755});
    for (const svc of services) {
      await rm(join(root, 'etc/runlevels', level, svc), {force: true});
      await symlink(`/etc/init.d/${svc}`, join(root, 'etc/runlevels', level, svc));
    }
  }

  if (s.rootPasswordHash !== null) await setRootPassword(root, s.rootPasswordHash);
  if (keys.length) {
    await mkdir(join(root, 'root/.ssh'), {recursive: true});
    await chmod(join(root, 'root/.ssh'), 0o700);
    await writeFile(join(root, 'root/.ssh/authorized_keys'), keys.join('\n') + '\n', {mode: 0o600});
    await chmod(join(root, 'root/.ssh/authorized_keys'), 0o600);
  }

  await mkdir(join(root, 'etc/psyopsOS/postboot.d'), {recursive: true});
  await chmod(join(root, 'etc/psyopsOS'), 0o755);
  if (pubkey) await writeFile(join(root, 'etc/psyopsOS/minisign.pubkey'), pubkey[1].replace(/\r\n/g, '\n').trimEnd() + '\n', {mode: 0o644});
  if (s.updateRepository !== null) await writeFile(join(root, 'etc/psyopsOS/repository'), s.updateRepository + '\n', {mode: 0o644});
  const conf = [
    '# Written by psy from settings.alpine; read by /usr/sbin/psyopsos-postboot.',
    `PSYOPSOS_DEFAULT_NODENAME=${shellQuote(s.defaultNodename)}`,
    `PSYOPSOS_SERIAL_CONSOLES=${shellQuote(s.serialConsoles.join(' '))}`,
    `PSYOPSOS_SERIAL_BAUD=${s.serialBaud}`,
    '',
  ].join('\n');
  await writeFile(join(root, 'etc/psyopsOS/node.conf'), conf, {mode: 0o644});
  await writeFile(join(root, 'etc/hostname'), s.defaultNodename + '\n');
}

/** Replaces root's password field in etc/shadow (the file keeps its owner and mode). */
async function setRootPassword(root: string, hash: string): Promise<void> {
  const path = join(root, 'etc/shadow');
  const text = await readFile(path, 'utf8').catch(() => {
    throw new PsyError('missing-input', 'settings.alpine.rootPasswordHash: the installed world has no /etc/shadow (alpine-baselayout-data provides it)');
  });
  let found = false;
  const lines = text.split('\n').map((line) => {
    const f = line.split(':');
    if (f[0] !== 'root') return line;
    found = true;
    f[1] = hash;
    return f.join(':');
  });
  if (!found) throw new PsyError('missing-input', 'settings.alpine.rootPasswordHash: /etc/shadow of the installed world has no root line');
  await writeFile(path, lines.join('\n'));
}
