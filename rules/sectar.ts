import {lstat} from 'node:fs/promises';
import {isAbsolute, resolve} from 'node:path';
import {defineRule} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';
import {directoryEntries, writeTar, type TarEntry} from '../src/image/tar.js';

/**
 * A node's secrets tarball for the psyops-secret partition: the flat files of the
 * node's secrets folder, plus `nodename` when the folder has none. Files are 0600.
 *
 * inputs: secrets (the folder's files). params: node, dir.
 */
export default defineRule({
  name: 'sectar',
  version: 1,
  module: import.meta.url,
  async run(ctx) {
    const node = String(ctx.params['node']);
    const dir = String(ctx.params['dir']);
    const abs = isAbsolute(dir) ? dir : resolve(ctx.root, dir);
    if (!(await lstat(abs).catch(() => undefined))?.isDirectory()) {
      throw new PsyError('missing-input', `secrets folder ${dir} for node ${node} does not exist`);
    }
    const entries: TarEntry[] = (await directoryEntries(abs)).map((e) => (e.type === 'file' ? {...e, mode: 0o600} : e));
    if (!entries.some((e) => e.path === 'nodename')) {
      entries.push({type: 'data', path: 'nodename', mode: 0o600, data: Buffer.from(node + '\n')});
    }
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    await writeTar(ctx.outputs['sectar']!, entries, ctx.sourceDateEpoch);
  },
});
