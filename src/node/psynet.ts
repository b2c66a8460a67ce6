import {existsSync} from 'node:fs';
import {mkdir, readFile} from 'node:fs/promises';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {writeFileAtomic} from '../fs/atomic-write.js';
import {decrypt, encrypt, type Identities} from './age.js';
import {newPsynetCa, type PsynetCa} from './keys.js';
import type {NodeSettings} from './settings.js';

/**
 * The psynet CA in the repository: `psynet/ca.crt` (public, what nodes and clients
 * trust) and `psynet/ca.key.age` (the CA key, encrypted to the operators like node
 * secrets). It is made once; nothing overwrites it.
 */

export const CA_CRT = 'ca.crt';
export const CA_KEY = 'ca.key.age';

export class PsynetStore {
  readonly dir: string;
  constructor(
    readonly root: string,
    readonly settings: NodeSettings,
  ) {
    this.dir = join(root, settings.psynetDir);
  }

  rel(file: string): string {
    return `${this.settings.psynetDir}/${file}`;
  }

  exists(): boolean {
    return existsSync(join(this.dir, CA_CRT));
  }

  async cert(): Promise<string> {
    try {
      return await readFile(join(this.dir, CA_CRT), 'utf8');
    } catch {
      throw new PsyError('no-psynet-ca', `no psynet CA (${this.rel(CA_CRT)} is missing): run psy psynet ca init`);
    }
  }

  /** The CA with its key decrypted in memory. */
  async load(identities: Identities): Promise<PsynetCa> {
    const cert = await this.cert();
    let sealed: string;
    try {
      sealed = await readFile(join(this.dir, CA_KEY), 'utf8');
    } catch {
      throw new PsyError('missing-secrets', `${this.rel(CA_KEY)} is missing (the CA key of ${this.rel(CA_CRT)})`);
    }
    const key = Buffer.from(await decrypt(sealed, identities, this.rel(CA_KEY)));
    if (!key.toString('utf8').includes('NEBULA ED25519 PRIVATE KEY')) {
      throw new PsyError('corrupt-secrets', `${this.rel(CA_KEY)}: the decrypted content is not a nebula CA key`);
    }
    return {cert, key};
  }

  /** Make the CA; refuses when one exists. Both files appear together or not at all. */
  async init(name: string, duration: string, recipients: readonly string[]): Promise<string> {
    if (this.exists() || existsSync(join(this.dir, CA_KEY))) {
      throw new PsyError('exists', `the psynet CA already exists (${this.rel(CA_CRT)}); it is made once`);
    }
    const ca = await newPsynetCa(name, duration);
    const sealed = await encrypt(ca.key, recipients);
    await mkdir(this.dir, {recursive: true});
    await writeFileAtomic(join(this.dir, CA_KEY), sealed);
    // the certificate last: a CA "exists" only once its key is in place
    await writeFileAtomic(join(this.dir, CA_CRT), ca.cert);
    return ca.cert;
  }
}
