// The psyopsOS build. `psy build diskimg` builds the disk image from Alpine's mirror;
// see docs/psyopsos-image.md for an offline build from a package cache or a local folder.
// Each node under nodes/ (psy node new) adds the targets sectar@NAME and diskimg@NAME.
import {defineConfig} from 'psy/config';
import {psyopsosConfig} from './targets/psyopsos.js';

export default defineConfig(
  psyopsosConfig(
    {
      release: '3.21',
      arch: 'x86_64',
      repositories: ['https://dl-cdn.alpinelinux.org/alpine/v3.21/main', 'https://dl-cdn.alpinelinux.org/alpine/v3.21/community'],
      keysDir: 'alpine/keys',
      world: ['alpine-base', 'busybox', 'mkinitfs', 'openssh', 'minisign', 'util-linux', 'e2fsprogs', 'grub-efi', 'tar'],
      kernelFlavor: 'lts',
      firmware: [],
      compression: {squashfs: 'zstd', modloop: 'zstd', initramfs: 'gzip'},
      partitions: {espMiB: 128, secretMiB: 128, slotMiB: 1536},
      // alpine/efi/memtest64.efi links to Debian's memtest86+ (scripts/install-deps.sh)
      efiExtras: {'alpine/efi/memtest64.efi': 'MemTest86+ (64-bit EFI)'},
      // OpenRC services, as `rc-update add` would enable them (the original's list)
      runlevels: {
        sysinit: ['devfs', 'dmesg', 'mdev', 'hwdrivers', 'modloop'],
        boot: ['hwclock', 'modules', 'sysctl', 'hostname', 'bootmisc', 'syslog'],
        default: ['local', 'sshd'],
        shutdown: ['mount-ro', 'killprocs', 'savecache'],
      },
      // a way in: root stays locked unless a hash is given; keys are public keys only
      rootPasswordHash: null,
      rootAuthorizedKeys: [],
      serialConsoles: ['ttyS0', 'ttyAMA0'],
      serialBaud: 115200,
      defaultNodename: 'psyopsOS-unconfigured',
    },
    {
      settings: {
        // The operators' age recipients (age-keygen -y KEYFILE): node secrets and the psynet
        // CA key are encrypted to every one of them.
        nodes: {recipients: []},
      },
    },
    {root: import.meta.dirname},
  ),
);
