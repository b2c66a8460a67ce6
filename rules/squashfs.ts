import {cp, lstat, mkdir, readFile, symlink} from 'node:fs/promises';
import {isAbsolute, join, resolve} from 'node:path';
import {defineRule, param} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';
import {readManifest} from '../src/apk/manifest.js';
import {applyNodeRoot, type NodeRootSettings} from '../src/image/node-root.js';
import {makeSquashfs, type Ownership, type SpecialFile, type SquashfsCompression} from '../src/image/squashfs.js';
import {tools} from './tools.js';

/**
 * The root filesystem: the installed root (owners and modes from its manifest), the
 * overlay folders on top (root-owned), the node settings (runlevels, root's way in,
 * update trust: src/image/node-root.ts), /lib/modules and /lib/firmware pointing into the
 * modloop the init mounts at /.modloop; squashfs, reproducible, without root.
 *
 * inputs: root, manifest, overlay (the overlay files, for staleness), authorizedKeys and
 * updatePubkey (optional files). params: overlayDirs (string[], relative to the project),
 * node (NodeRootSettings plus rootAuthorizedKeys and updatePubkey as configured),
 * compression, level.
 */
/** The node settings as the target hands them over, with the files they name. */
export type SquashfsNodeParams = NodeRootSettings & {rootAuthorizedKeys: string[]; updatePubkey: string | null};

export default defineRule({
  name: 'squashfs',
  version: 2,
  module: import.meta.url,
  tools: [tools.mksquashfs],
  inputs: {root: 'file', manifest: 'file', overlay: 'files?', authorizedKeys: 'files?', updatePubkey: 'file?'},
  params: {overlayDirs: 'strings?', node: param.optional<SquashfsNodeParams>(), compression: param.optional<SquashfsCompression>(), level: 'number?'},
  outputs: {squashfs: 'file'},
  async run(ctx) {
    const stage = join(ctx.tmpDir, 'root');
    await cp(ctx.inputs.root, stage, {recursive: true, verbatimSymlinks: true});
    const manifest = readManifest(ctx.inputs.manifest);
    const ownership = new Map<string, Ownership>();
    const specials: SpecialFile[] = [];
    for (const e of manifest.entries) {
      if (e.path === '') continue;
      if ((e.type === 'char' || e.type === 'block') && !e.onDisk) {
        specials.push({path: e.path, type: e.type, major: e.major ?? 0, minor: e.minor ?? 0, mode: e.mode, uid: e.uid, gid: e.gid});
      } else ownership.set(e.path, {mode: e.mode, uid: e.uid, gid: e.gid});
    }
    for (const dir of ctx.params.overlayDirs ?? []) {
      const abs = isAbsolute(dir) ? dir : resolve(ctx.root, dir);
      if (!(await lstat(abs).catch(() => undefined))?.isDirectory()) {
        throw new PsyError('missing-input', `overlay folder ${dir} does not exist`);
      }
      await cp(abs, stage, {recursive: true, verbatimSymlinks: true, force: true});
    }
    // Overlay files replace packaged ones: their owner is root, their mode their own.
    const overlayFiles = ctx.inputs.overlay;
    for (const dir of ctx.params.overlayDirs ?? []) {
      const abs = isAbsolute(dir) ? dir : resolve(ctx.root, dir);
      for (const f of overlayFiles) if (f.startsWith(abs + '/')) ownership.delete(f.slice(abs.length + 1));
    }
    const node = ctx.params.node;
    if (node) {
      const text = async (file: string) => [file, await readFile(resolve(ctx.root, file), 'utf8')] as const;
      await applyNodeRoot(stage, node, {
        authorizedKeys: await Promise.all(node.rootAuthorizedKeys.map(text)),
        updatePubkey: node.updatePubkey === null ? undefined : await text(node.updatePubkey),
      });
    }
    await mkdir(join(stage, 'lib'), {recursive: true});
    for (const [name, target] of [
      ['modules', '/.modloop/modules'],
      ['firmware', '/.modloop/modules/firmware'],
    ] as const) {
      if (!(await lstat(join(stage, 'lib', name)).catch(() => undefined))) await symlink(target, join(stage, 'lib', name));
    }
    const level = ctx.params.level;
    await makeSquashfs(
      stage,
      ctx.outputs.squashfs,
      {
        epoch: ctx.sourceDateEpoch,
        compression: ctx.params.compression ?? 'zstd',
        ...(typeof level === 'number' ? {level} : {}),
        ownership,
        specials,
      },
      ctx.tmpDir,
      ctx.run,
    );
  },
});
