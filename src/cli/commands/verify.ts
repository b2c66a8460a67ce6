import {readFile} from 'node:fs/promises';
import {resolve} from 'node:path';
import {loadProjectSettings} from '../../deaddrop/project.js';
import {PsyError} from '../../errors.js';
import {parseSigningSettings, resolvePublicKey} from '../../sign/key-source.js';
import {parseTrustedComment, verifyFile} from '../../sign/index.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

const help = `Usage: psy verify [options] FILE...

Verifies each FILE against FILE.minisig: the signature over the file and the one over
its trusted comment. Accepts prehashed and legacy minisign signatures.

The public key is --public-key, else PSY_SIGNING_PUBKEY, else settings.signing.publicKey.
With no key configured at all, the development key's public half is used only when
--dev-key says so: a signature made by the development key proves nothing about a release.

Options:
  -p, --public-key FILE  public key file (or the base64 key line itself)
  -x, --signature FILE   signature file (one FILE only; default FILE.minisig)
      --expect KEY=VALUE the trusted comment must hold this field (repeatable)
  -H, --prehashed-only   refuse legacy signatures
  -Q, --quiet            print only the trusted comment
      --dev-key          trust the development key (cache/signing/dev.pub) when no key
                         is configured
      --json             print one JSON object per FILE on stdout: file, keyId,
                         algorithm, trustedComment and its fields
      --config FILE      use FILE instead of build.config.ts

Exit status: 0 every FILE verified, 1 a bad or missing signature, file or key, 2 usage error.`;

export const command: Command = {
  name: 'verify',
  summary: 'verify minisign signatures and print their trusted comments',
  help,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('verify', argv, {
      'public-key': {type: 'string', short: 'p'},
      signature: {type: 'string', short: 'x'},
      expect: {type: 'string', multiple: true},
      'prehashed-only': {type: 'boolean', short: 'H'},
      quiet: {type: 'boolean', short: 'Q'},
      'dev-key': {type: 'boolean'},
      json: {type: 'boolean'},
      config: {type: 'string'},
    });
    if (positionals.length === 0) throw new PsyError('usage', 'no file to verify (see psy verify --help)');
    if (values.signature !== undefined && positionals.length > 1) throw new PsyError('usage', '--signature works with one FILE only');
    const expected: Array<[string, string]> = (values.expect ?? []).map((e) => {
      const eq = e.indexOf('=');
      if (eq <= 0) throw new PsyError('usage', `--expect '${e}' is not KEY=VALUE`);
      return [e.slice(0, eq), e.slice(eq + 1)];
    });
    const project = await loadProjectSettings(io.cwd, values.config, false);
    const pkArg = values['public-key'];
    // a bare base64 key line works too, as with minisign -P
    const inline = pkArg !== undefined && /^RW[A-Za-z0-9+/]{54}$/.test(pkArg);
    const warnings: string[] = [];
    const resolved = inline
      ? {publicKey: (await import('../../sign/index.js')).parsePublicKey(pkArg, '--public-key'), development: false, path: '--public-key'}
      : await resolvePublicKey({
          root: project.root,
          settings: parseSigningSettings(project.settings['signing']),
          env: io.env,
          publicKeyPath: pkArg !== undefined ? resolve(io.cwd, pkArg) : undefined,
          warn: (l) => warnings.push(l),
        });
    if (resolved.development && values['dev-key'] !== true) {
      throw new PsyError(
        'dev-key',
        `no public key configured; give --public-key FILE (or PSY_SIGNING_PUBKEY, settings.signing.publicKey), or --dev-key to trust the development key ${resolved.path}`,
      );
    }
    for (const w of warnings) writeLine(io.stderr, w);
    const {publicKey} = resolved;
    for (const file of positionals) {
      const path = resolve(io.cwd, file);
      const sigPath = values.signature !== undefined ? resolve(io.cwd, values.signature) : `${path}.minisig`;
      const text = await readFile(sigPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new PsyError('missing-input', `cannot read ${sigPath}: ${err.code ?? String(err)}`);
      });
      const v = await verifyFile(path, publicKey, {signature: text, source: sigPath, allowLegacy: values['prehashed-only'] !== true});
      if (expected.length > 0) {
        const fields = parseTrustedComment(v.trustedComment, sigPath);
        for (const [k, want] of expected) {
          if (fields[k] !== want) {
            throw new PsyError('unexpected-metadata', `${sigPath}: trusted comment has ${k}=${fields[k] ?? '(missing)'}, expected ${k}=${want}`);
          }
        }
      }
      if (values.json === true) {
        writeLine(
          io.stdout,
          JSON.stringify({
            file,
            signature: sigPath,
            keyId: v.keyId,
            algorithm: v.algorithm,
            trustedComment: v.trustedComment,
            fields: parseTrustedComment(v.trustedComment, sigPath),
          }),
        );
      } else if (values.quiet === true) writeLine(io.stdout, v.trustedComment);
      else writeLine(io.stdout, `${file}: signature and trusted comment verified (key ${v.keyId}, ${v.algorithm}); trusted comment: ${v.trustedComment}`);
    }
    return 0;
  },
};
