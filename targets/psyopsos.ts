import {defineTarget, type InputSpec, type JsonValue, type PsyConfig, type TargetConfig} from '../src/engine/config.js';
import alpineRoot from '../rules/alpine-root.js';
import apkRepository from '../rules/apk-repository.js';
import diskimg from '../rules/diskimg.js';
import esptar from '../rules/esptar.js';
import initOrig from '../rules/init-orig.js';
import initPatch from '../rules/init-patch.js';
import initramfs from '../rules/initramfs.js';
import kernel from '../rules/kernel.js';
import modloop from '../rules/modloop.js';
import ostar from '../rules/ostar.js';
import nodeImage from '../rules/node-image.js';
import sectar from '../rules/sectar.js';
import squashfs from '../rules/squashfs.js';
import {join} from 'node:path';
import {validateNodeRootSettings, type NodeRootSettings} from '../src/image/node-root.js';
import {parseNodeSettings} from '../src/node/settings.js';
import {shippedNpmPackages} from '../src/upgrade/package-stage.js';
import {listNodeNames, SECRETS_FILE} from '../src/node/store.js';
import {
  alpineSettingsFor,
  deaddropApkRepository,
  deaddropOsRepository,
  nodeRepositoriesOf,
  packageSettingsOf,
  withDefaults,
  type AlpineSettings,
  type DeaddropBucket,
} from './settings.js';

/**
 * The psyopsOS artifacts as targets. Each names what it reads, so an edit of the init
 * patch re-runs init, initramfs, ostar and diskimg only; a new package version in the
 * repository re-runs the installs and what really changed below them.
 */
export function psyopsosTargets(partial: Partial<AlpineSettings>): TargetConfig[] {
  const s = withDefaults(partial);
  // the node settings are checked when the config loads, not first in the squashfs step
  const node: NodeRootSettings = {
    runlevels: Object.fromEntries(Object.entries(s.runlevels).map(([l, v]) => [l, [...v]])),
    rootPasswordHash: s.rootPasswordHash,
    serialConsoles: [...s.serialConsoles],
    serialBaud: s.serialBaud,
    defaultNodename: s.defaultNodename,
    updateRepository: s.updateRepository ?? null,
  };
  validateNodeRootSettings(node);
  const kernelPackages = [`linux-${s.kernelFlavor}`, ...s.firmware];
  // The lock is the input of both installs: a new lock re-runs them, and early cutoff
  // stops at whatever did not really change below.
  const lockInput = {lock: s.lockfile};
  const settings = packageSettingsOf(s) as JsonValue;
  const withOwn = s.ownPackages.length > 0;
  // the root's etc/apk/repositories names our repository too, and etc/apk/keys its key
  const withOwnRepo = typeof s.psyopsRepository === 'string' && s.psyopsRepository !== '';
  const systemSettings = {...(settings as Record<string, JsonValue>), nodeRepositories: nodeRepositoriesOf(s)} as JsonValue;
  const ownInputs: {ownRepo?: InputSpec; ownKeys?: InputSpec} = {
    ...(withOwn ? {ownRepo: {target: 'apkrepo', output: 'repo'}} : {}),
    ...(withOwn || withOwnRepo ? {ownKeys: {target: 'apkrepo', output: 'keys'}} : {}),
  };
  // With our packages in the root, the init and the initramfs read a root without them,
  // so a change to neuralupgrade re-runs only the repository, rootfs and what holds it.
  const bootRoot = withOwn ? 'boot-root' : 'rootfs';
  const targets: TargetConfig[] = [
    defineTarget({
      name: 'apkrepo',
      description: `our own packages (${s.packagesDir}/*) as a signed APK repository`,
      rule: apkRepository,
      inputs: {
        packages: {glob: `${s.packagesDir}/**`},
        // neuralupgrade ships the compiled modules: a change to its code rebuilds the package
        dist: {glob: `${s.distDir}/**/*.js`},
        ...(s.apkBuildKey === undefined ? {} : {key: s.apkBuildKey}),
      },
      params: {
        packagesDir: s.packagesDir,
        distDir: s.distDir,
        arch: s.arch,
        release: s.release,
        key: s.apkBuildKey ?? null,
        // the npm packages neuralupgrade ships come from psy's install, not from an input file
        ...(s.ownPackages.includes('neuralupgrade') ? {npmPackages: shippedNpmPackages(s.distDir)} : {}),
      },
      outputs: {repo: {dir: 'apkrepo/repo'}, keys: {dir: 'apkrepo/keys'}},
    }),
    defineTarget({
      name: 'rootfs',
      description: withOwn
        ? `the Alpine world and ${s.ownPackages.join(', ')} installed into a folder (plus its ownership manifest)`
        : 'the Alpine world installed into a folder (plus its ownership manifest)',
      rule: alpineRoot,
      inputs: {...lockInput, ...ownInputs},
      params: {settings: systemSettings, part: 'system', kernelPackages},
      outputs: {root: {dir: 'rootfs/root'}, manifest: 'rootfs/manifest.json'},
    }),
    ...(withOwn
      ? [
          defineTarget({
            name: 'boot-root',
            description: 'the Alpine world without our packages: what the init and the initramfs are taken from',
            rule: alpineRoot,
            inputs: lockInput,
            params: {settings, part: 'boot', kernelPackages},
            outputs: {root: {dir: 'boot-root/root'}, manifest: 'boot-root/manifest.json'},
          }),
        ]
      : []),
    defineTarget({
      name: 'kernel-root',
      description: `linux-${s.kernelFlavor} and firmware installed into a folder`,
      rule: alpineRoot,
      inputs: lockInput,
      params: {settings, part: 'kernel', kernelPackages},
      outputs: {root: {dir: 'kernel-root/root'}, manifest: 'kernel-root/manifest.json'},
    }),
    defineTarget({
      name: 'init-orig',
      description: 'upstream initramfs-init from the installed mkinitfs',
      rule: initOrig,
      inputs: {root: {target: bootRoot, output: 'root'}},
      outputs: {init: 'init/initramfs-init.orig'},
    }),
    defineTarget({
      name: 'init',
      description: 'the psyopsOS init: upstream init + the init patch',
      rule: initPatch,
      inputs: {orig: {target: 'init-orig'}, patch: s.initPatch},
      outputs: {init: 'init/initramfs-init'},
    }),
    defineTarget({
      name: 'kernel',
      description: 'vmlinuz, System.map, config, kernel.version and the module tree',
      rule: kernel,
      inputs: {root: {target: 'kernel-root', output: 'root'}},
      params: {flavor: s.kernelFlavor},
      outputs: {
        kernel: 'kernel/kernel',
        systemMap: 'kernel/System.map',
        config: 'kernel/config',
        version: 'kernel/kernel.version',
        modules: {dir: 'kernel/modules'},
      },
    }),
    defineTarget({
      name: 'modloop',
      description: 'squashfs of the kernel modules and the firmware they reference',
      rule: modloop,
      inputs: {
        modules: {target: 'kernel', output: 'modules'},
        version: {target: 'kernel', output: 'version'},
        firmware: {target: 'kernel-root', output: 'root'},
      },
      params: {compression: s.compression.modloop, ...(s.compression.modloopLevel === undefined ? {} : {level: s.compression.modloopLevel})},
      outputs: {modloop: 'kernel/modloop'},
    }),
    defineTarget({
      name: 'initramfs',
      description: 'cpio of the init, busybox and the boot modules',
      rule: initramfs,
      inputs: {
        init: {target: 'init'},
        root: {target: bootRoot, output: 'root'},
        modules: {target: 'kernel', output: 'modules'},
        version: {target: 'kernel', output: 'version'},
      },
      params: {
        features: [...new Set(['base', 'squashfs', ...s.mkinitfsFeatures])],
        extraModules: [...s.initramfsModules],
        compression: s.compression.initramfs,
      },
      outputs: {initramfs: 'initramfs/initramfs'},
    }),
    defineTarget({
      name: 'squashfs',
      description: 'the root filesystem: installed world + overlay',
      rule: squashfs,
      inputs: {
        root: {target: 'rootfs', output: 'root'},
        manifest: {target: 'rootfs', output: 'manifest'},
        overlay: {glob: s.overlayDirs.map((d) => `${d}/**`)},
        ...(s.rootAuthorizedKeys.length ? {authorizedKeys: {files: [...s.rootAuthorizedKeys]}} : {}),
        ...(typeof s.updatePubkey === 'string' ? {updatePubkey: s.updatePubkey} : {}),
      },
      params: {
        overlayDirs: [...s.overlayDirs],
        node: {...node, rootAuthorizedKeys: [...s.rootAuthorizedKeys], updatePubkey: s.updatePubkey ?? null},
        compression: s.compression.squashfs,
        ...(s.compression.squashfsLevel === undefined ? {} : {level: s.compression.squashfsLevel}),
      },
      outputs: {squashfs: 'squashfs/squashfs'},
    }),
    defineTarget({
      name: 'ostar',
      description: 'the OS tarball for an A/B slot',
      rule: ostar,
      inputs: {
        kernel: {target: 'kernel', output: 'kernel'},
        version: {target: 'kernel', output: 'version'},
        systemMap: {target: 'kernel', output: 'systemMap'},
        config: {target: 'kernel', output: 'config'},
        modloop: {target: 'modloop'},
        squashfs: {target: 'squashfs'},
        initramfs: {target: 'initramfs'},
      },
      params: {alpineRelease: s.release},
      outputs: {ostar: `${s.arch}/psyopsOS.tar`},
    }),
    defineTarget({
      name: 'esptar',
      description: 'the ESP tarball: GRUB EFI binary, static grub.cfg, EFI extras',
      rule: esptar,
      inputs: Object.keys(s.efiExtras).length ? {extras: {files: Object.keys(s.efiExtras)}} : {},
      params: {
        extraPrograms: Object.fromEntries(Object.entries(s.efiExtras).map(([p, t]) => [p.slice(p.lastIndexOf('/') + 1), t])),
        ...(s.grub.timeoutSec === undefined ? {} : {timeoutSec: s.grub.timeoutSec}),
        ...(s.grub.kernelArgs === undefined ? {} : {kernelArgs: s.grub.kernelArgs}),
      },
      outputs: {esptar: `${s.arch}/psyopsESP.tar`},
    }),
  ];
  if (s.node) {
    targets.push(
      defineTarget({
        name: 'sectar',
        description: `secrets of node ${s.node.name}`,
        rule: sectar,
        inputs: {secrets: {glob: `${s.node.secretsDir}/**`}},
        params: {node: s.node.name, dir: s.node.secretsDir},
        outputs: {sectar: `noarch/psyops-secret.${s.node.name}.tar`},
      }),
    );
  }
  targets.push(
    defineTarget({
      name: 'diskimg',
      description: 'the GPT disk image: ESP, psyops-secret, psyopsOS-A, psyopsOS-B',
      rule: diskimg,
      inputs: {ostar: {target: 'ostar'}, esptar: {target: 'esptar'}, ...(s.node ? {sectar: {target: 'sectar'}} : {})},
      params: {sizes: {...s.partitions}, seed: s.imageSeed},
      outputs: {image: `${s.arch}/psyopsOS.${s.arch}-uefi.${s.node?.name ?? 'generic'}.img`},
    }),
  );
  return targets;
}

/**
 * The targets of each node in the repository (decision 9): `sectar@NAME` from its
 * encrypted secrets and `diskimg@NAME`, the generic image with that tarball in its
 * psyops-secret partition. A node's targets read only its own secrets.age, so editing
 * one node rebuilds that node's two targets and nothing else.
 */
export function nodeTargets(names: readonly string[], nodesDir: string, partial: Partial<AlpineSettings>): TargetConfig[] {
  const s = withDefaults(partial);
  return names.flatMap((name): TargetConfig[] => [
    defineTarget({
      name: `sectar@${name}`,
      description: `secrets of node ${name} (decrypted from ${nodesDir}/${name}/${SECRETS_FILE})`,
      rule: sectar,
      inputs: {sealed: `${nodesDir}/${name}/${SECRETS_FILE}`},
      params: {node: name, sealedPath: `${nodesDir}/${name}/${SECRETS_FILE}`},
      outputs: {sectar: `noarch/psyops-secret.${name}.tar`},
    }),
    defineTarget({
      name: `diskimg@${name}`,
      description: `the disk image of node ${name}: the generic image with its psyops-secret`,
      rule: nodeImage,
      inputs: {image: {target: 'diskimg'}, sectar: {target: `sectar@${name}`}},
      params: {node: name, seed: s.imageSeed},
      outputs: {image: `${s.arch}/psyopsOS.${s.arch}-uefi.${name}.img`},
    }),
  ]);
}

/** Where the project is: with `root`, the nodes under settings.nodes.dir get their targets. */
export interface ProjectOptions {
  /** The project folder (pass `import.meta.dirname` from build.config.ts). */
  readonly root?: string;
}

/** A whole config for a psyopsOS build: the targets plus `settings.alpine`. */
export function psyopsosConfig(alpine: Partial<AlpineSettings>, extra: Partial<PsyConfig> = {}, project: ProjectOptions = {}): PsyConfig {
  const base = withDefaults(alpine);
  // `psy publish` ships the OS and ESP tarballs and our package repository
  const deaddrop = (extra.settings?.['deaddrop'] as JsonValue | undefined) ?? {
    ostar: {target: 'ostar', arch: base.arch},
    esptar: {target: 'esptar', platform: `${base.arch}-uefi`},
    apk: {target: 'apkrepo', output: 'repo'},
  };
  const s3 = (deaddrop as {s3?: DeaddropBucket} | null)?.s3;
  const psyopsRepository = alpine.psyopsRepository === undefined ? (deaddropApkRepository(s3, base.release) ?? null) : alpine.psyopsRepository;
  // the node's update trust: the key releases are signed with, the deaddrop it reads
  const signing = extra.settings?.['signing'] as {publicKey?: unknown} | undefined;
  const updatePubkey = alpine.updatePubkey === undefined ? (typeof signing?.publicKey === 'string' ? signing.publicKey : null) : alpine.updatePubkey;
  const updateRepository = alpine.updateRepository === undefined ? (deaddropOsRepository(s3) ?? null) : alpine.updateRepository;
  const full = withDefaults({...alpine, psyopsRepository, updatePubkey, updateRepository});
  // The node list is read while the config is evaluated: the loader notes the folder,
  // so adding or removing a node re-evaluates the config.
  const nodes = parseNodeSettings(extra.settings?.['nodes']);
  const names = project.root === undefined ? [] : listNodeNames(join(project.root, nodes.dir));
  return {
    targets: [...psyopsosTargets(full), ...nodeTargets(names, nodes.dir, full)],
    default: 'diskimg',
    sourceDateEpoch: 1700000000,
    ...extra,
    settings: {
      alpine: alpineSettingsFor(full),
      deaddrop,
      ...extra.settings,
    },
  };
}
