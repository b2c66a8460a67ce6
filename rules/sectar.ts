import {chmod, lstat, readFile} from 'node:fs/promises';
import {isAbsolute, resolve} from 'node:path';
import {defineRule} from '../src/engine/rule.js';
import {PsyError} from '../src/errors.js';
import {directoryEntries, writeTar, type TarEntry} from '../src/image/tar.js';
import {loadIdentities} from '../src/node/age.js';
import {unsealSecrets} from '../src/node/store.js';

/**
 * A node's secrets tarball for the psyops-secret partition: flat 0600 files, sorted,
 * with `nodename` added when missing. The secrets come from either
 *  - `sealed` (nodes/NAME/secrets.age, made by psy node): decrypted in memory with the
 *    operator's age identity (PSY_AGE_IDENTITY, else ~/.config/psy/age.key). The action
 *    key is that of the encrypted file; the identity is not an input, so any operator
 *    builds the same tarball;
 *  - `secrets` (settings.alpine.node.secretsDir): a plain folder of files.
 * The tarball itself is 0600: it holds the node's private keys.
 *
 * inputs: sealed | secrets. params: node, dir (folder mode).
 */
export default defineRule({
  name: 'sectar',
  version: 2,
  module: import.meta.url,
  inputs: {sealed: 'file?', secrets: 'files?'},
  params: {node: 'string', dir: 'string?', sealedPath: 'string?'},
  outputs: {sectar: 'file'},
  async run(ctx) {
    const node = ctx.params.node;
    let entries: TarEntry[];
    const sealed = ctx.inputs.sealed;
    if (sealed !== undefined) {
      const rel = ctx.params.sealedPath ?? sealed;
      const files = await unsealSecrets(await readFile(sealed, 'utf8'), loadIdentities(process.env), rel);
      const name = files.get('nodename')?.toString('utf8').trim();
      if (name !== node) throw new PsyError('corrupt-secrets', `${rel}: its nodename is '${name}', not '${node}'`);
      entries = [...files].map(([path, data]): TarEntry => ({type: 'data', path, mode: 0o600, data}));
    } else {
      const dir = String(ctx.params.dir);
      const abs = isAbsolute(dir) ? dir : resolve(ctx.root, dir);
      if (!(await lstat(abs).catch(() => undefined))?.isDirectory()) {
        throw new PsyError('missing-input', `secrets folder ${dir} for node ${node} does not exist`);
      }
      entries = (await directoryEntries(abs)).map((e) => (e.type === 'file' ? {...e, mode: 0o600} : e));
    }
    if (!entries.some((e) => e.path === 'nodename')) {
      entries.push({type: 'data', path: 'nodename', mode: 0o600, data: Buffer.from(node + '\n')});
    }
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    await writeTar(ctx.outputs.sectar, entries, ctx.sourceDateEpoch);
    await chmod(ctx.outputs.sectar, 0o600);
  },
});
