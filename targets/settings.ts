import type {PsyopsSizes} from '../src/disk/psyops-layout.js';
import type {Compression} from '../src/image/cpio.js';
import type {SquashfsCompression} from '../src/image/squashfs.js';

/** The psyopsOS build settings (`settings.alpine` in build.config.ts). */
export interface AlpineSettings {
  /** Alpine release, e.g. '3.21' (written into the OS tarball as squashfs.alpine_version). */
  readonly release: string;
  readonly arch: string;
  /** Repository bases: mirror URLs or local folders (relative to the project). */
  readonly repositories: readonly string[];
  /** Folder of trusted APK signing keys (*.rsa.pub). */
  readonly keysDir: string;
  /** etc/apk/repositories of the installed system; the build's http(s) repositories when omitted. */
  readonly nodeRepositories?: readonly string[];
  /**
   * Our package repository as nodes reach it, added to etc/apk/repositories of the root
   * (its signing key goes into etc/apk/keys): where `psy publish` puts it in the
   * deaddrop, `<bucket URL>/apk/v<release>/psyopsOS`. psyopsosConfig derives it from
   * settings.deaddrop.s3 (publicUrl, else the bucket's S3 URL) when omitted; null: none.
   */
  readonly psyopsRepository?: string | null;
  /** Download cache for mirror indexes and packages. */
  readonly cacheDir: string;
  /** The lock `psy lock` writes and the installs read. */
  readonly lockfile: string;
  /** Packages of the root filesystem (mkinitfs is added: the init comes from it). */
  readonly world: readonly string[];
  /** linux-<flavor> is the kernel package. */
  readonly kernelFlavor: string;
  /** Firmware packages installed beside the kernel; only referenced files go into the modloop. */
  readonly firmware: readonly string[];
  /** mkinitfs features for the initramfs ('base' and 'squashfs' are always included). */
  readonly mkinitfsFeatures: readonly string[];
  /** Kernel modules the initramfs gets besides the features' (e.g. virtio_pci when it is a module). */
  readonly initramfsModules: readonly string[];
  readonly compression: {
    readonly squashfs: SquashfsCompression;
    readonly squashfsLevel?: number;
    readonly modloop: SquashfsCompression;
    readonly modloopLevel?: number;
    readonly initramfs: Compression;
  };
  readonly partitions: PsyopsSizes;
  /** Overlay folders copied over the installed root, in order. */
  readonly overlayDirs: readonly string[];
  readonly initPatch: string;
  /**
   * EFI programs for the ESP: project path → menu title (the file keeps its name).
   * Default: Debian's memtest86+ through the link alpine/efi/memtest64.efi.
   */
  readonly efiExtras: Readonly<Record<string, string>>;
  readonly grub: {readonly timeoutSec?: number; readonly kernelArgs?: string};
  /**
   * Name a node to build its secrets tarball into the image; `mac` is the MAC its
   * mactab names, which `psy vm` gives the VM's NIC.
   */
  readonly node?: {readonly name: string; readonly secretsDir: string; readonly mac?: string};
  /**
   * OpenRC runlevel → services, linked into /etc/runlevels as `rc-update add` does. A
   * service without /etc/init.d/<svc> in the installed world (or an overlay) is refused.
   */
  readonly runlevels: Readonly<Record<string, readonly string[]>>;
  /** root's crypt(3) password hash (`mkpasswd -m sha-512`); null (default): locked. */
  readonly rootPasswordHash: string | null;
  /** Files (project paths) of SSH public keys for /root/.ssh/authorized_keys. */
  readonly rootAuthorizedKeys: readonly string[];
  /** Serial consoles that get a getty at boot when present, and their speed. */
  readonly serialConsoles: readonly string[];
  readonly serialBaud: number;
  /** Host name of a node booted without a psyops-secret partition. */
  readonly defaultNodename: string;
  /**
   * minisign public key file → /etc/psyopsOS/minisign.pubkey; psyopsosConfig takes
   * settings.signing.publicKey when omitted; null: none.
   */
  readonly updatePubkey?: string | null;
  /**
   * /etc/psyopsOS/repository, the update repository neuralupgrade uses by default;
   * psyopsosConfig derives it from settings.deaddrop.s3 (`<bucket URL>/<prefix>os`)
   * when omitted; null: none.
   */
  readonly updateRepository?: string | null;
  /** Seed of the disk image's GUIDs and filesystem ids. */
  readonly imageSeed: string;
  /** Folder of our own package declarations (one folder per package); the apkrepo target builds them all. */
  readonly packagesDir: string;
  /** Our packages that go into the root, resolved with the world (`psy lock`). */
  readonly ownPackages: readonly string[];
  /** The compiled modules neuralupgrade's package ships (npm run build makes them). */
  readonly distDir: string;
  /** abuild private key (PEM) that signs our packages; a development key under cache/ when omitted. */
  readonly apkBuildKey?: string;
}

/** The original's runlevels (psyopsOS's make-psyopsOS-squashfs.sh). */
export const defaultRunlevels: Readonly<Record<string, readonly string[]>> = {
  sysinit: ['devfs', 'dmesg', 'mdev', 'hwdrivers', 'modloop'],
  boot: ['hwclock', 'modules', 'sysctl', 'hostname', 'bootmisc', 'syslog'],
  default: ['local', 'sshd'],
  shutdown: ['mount-ro', 'killprocs', 'savecache'],
};

/**
 * A link to the EFI binary of Debian's memtest86+ package (scripts/install-deps.sh
 * installs it), named as the original's ESP names it.
 */
export const MEMTEST_EFI = 'alpine/efi/memtest64.efi';

/** The original's choices where it had them (Alpine 3.21, linux-lts, 128/128/1536 MiB). */
export const defaultAlpineSettings: AlpineSettings = {
  release: '3.21',
  arch: 'x86_64',
  repositories: ['https://dl-cdn.alpinelinux.org/alpine/v3.21/main', 'https://dl-cdn.alpinelinux.org/alpine/v3.21/community'],
  keysDir: 'alpine/keys',
  cacheDir: 'cache/apk',
  lockfile: 'alpine/packages.lock.json',
  world: ['alpine-base', 'busybox', 'mkinitfs', 'openssh', 'minisign', 'util-linux', 'e2fsprogs', 'grub-efi'],
  kernelFlavor: 'lts',
  firmware: [],
  mkinitfsFeatures: ['ata', 'base', 'ide', 'scsi', 'usb', 'virtio', 'ext4', 'nvme'],
  initramfsModules: [],
  compression: {squashfs: 'zstd', modloop: 'zstd', initramfs: 'gzip'},
  partitions: {espMiB: 128, secretMiB: 128, slotMiB: 1536},
  overlayDirs: ['alpine/overlay'],
  initPatch: 'alpine/initramfs-init.patch',
  efiExtras: {[MEMTEST_EFI]: 'MemTest86+ (64-bit EFI)'},
  grub: {},
  imageSeed: 'psyopsOS',
  packagesDir: 'alpine/packages',
  ownPackages: ['neuralupgrade'],
  distDir: 'dist',
  runlevels: defaultRunlevels,
  rootPasswordHash: null,
  rootAuthorizedKeys: [],
  serialConsoles: ['ttyS0', 'ttyAMA0'],
  serialBaud: 115200,
  defaultNodename: 'psyopsOS-unconfigured',
};

export function withDefaults(s: Partial<AlpineSettings>): AlpineSettings {
  return {
    ...defaultAlpineSettings,
    ...s,
    compression: {...defaultAlpineSettings.compression, ...s.compression},
    partitions: {...defaultAlpineSettings.partitions, ...s.partitions},
  };
}

/**
 * settings.alpine as written into the config: the world `psy lock` resolves is the
 * system's world plus mkinitfs (the init comes from it), the kernel and its firmware.
 */
export function alpineSettingsFor(s: AlpineSettings): AlpineSettings {
  const world = [...new Set([...s.world, 'mkinitfs', `linux-${s.kernelFlavor}`, ...s.firmware])];
  return {...s, world};
}

/** What settings.deaddrop.s3 says about where the bucket is (only the fields read here). */
export interface DeaddropBucket {
  readonly bucket?: string;
  readonly prefix?: string;
  readonly region?: string;
  readonly endpoint?: string;
  readonly publicUrl?: string;
}

/**
 * The deaddrop as nodes read it, ending in '/': under the bucket's public URL when there
 * is one, else the bucket's own URL (path-style under a custom endpoint, virtual-hosted
 * on AWS), with the key prefix. Undefined without a bucket.
 */
function deaddropBase(s3: DeaddropBucket | undefined): string | undefined {
  if (!s3?.bucket) return undefined;
  const trimmed = (s3.prefix ?? '').replace(/^\/+|\/+$/g, '');
  const prefix = trimmed ? `${trimmed}/` : '';
  const base = s3.publicUrl
    ? s3.publicUrl.replace(/\/+$/, '')
    : s3.endpoint
      ? `${s3.endpoint.replace(/\/+$/, '')}/${s3.bucket}`
      : `https://${s3.bucket}.s3.${s3.region ?? 'us-east-1'}.amazonaws.com`;
  return `${base}/${prefix}`;
}

/** Where nodes find the APK repository `psy publish` mirrors into the deaddrop's apk/ folder. */
export function deaddropApkRepository(s3: DeaddropBucket | undefined, release: string): string | undefined {
  const base = deaddropBase(s3);
  return base && `${base}apk/v${release.replace(/^v/, '')}/psyopsOS`;
}

/** The update repository nodes use by default (neuralupgrade's --repository): the deaddrop's os/ folder. */
export function deaddropOsRepository(s3: DeaddropBucket | undefined): string | undefined {
  const base = deaddropBase(s3);
  return base && `${base}os`;
}

/** etc/apk/repositories of the installed system: the Alpine repositories, then ours. */
export function nodeRepositoriesOf(s: AlpineSettings): string[] {
  const alpine = s.nodeRepositories ?? s.repositories.filter((r) => /^(@\S+\s+)?https?:\/\//.test(r.trim()));
  const ours = s.psyopsRepository;
  return ours && !alpine.includes(ours) ? [...alpine, ours] : [...alpine];
}

/** The part of settings.alpine the package installs depend on (their step parameters). */
export function packageSettingsOf(s: AlpineSettings): Record<string, unknown> {
  const full = alpineSettingsFor(s);
  return {
    release: full.release,
    arch: full.arch,
    repositories: [...full.repositories],
    keysDir: full.keysDir,
    world: full.world,
    lockfile: full.lockfile,
    cacheDir: full.cacheDir,
    ...(full.nodeRepositories ? {nodeRepositories: [...full.nodeRepositories]} : {}),
    ownPackages: [...full.ownPackages],
    packagesDir: full.packagesDir,
  };
}
