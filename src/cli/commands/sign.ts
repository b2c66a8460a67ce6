import {stat} from 'node:fs/promises';
import {basename, resolve} from 'node:path';
import {loadProjectSettings} from '../../deaddrop/project.js';
import {PsyError} from '../../errors.js';
import {parseSigningSettings, resolveSecretKey, terminalPrompt} from '../../sign/key-source.js';
import {writeFileAtomic} from '../../fs/atomic-write.js';
import {formatTrustedComment, parseTrustedComment, signFile} from '../../sign/index.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

const help = `Usage: psy sign [options] FILE...

Signs each FILE into FILE.minisig (minisign format, prehashed). The trusted comment is
key=value pairs: by default filename=<name> size=<bytes>; -t replaces it, --field adds
to it.

The key is --secret-key, else PSY_SIGNING_KEY, else settings.signing.secretKey; with
none, a development key under cache/signing/ is used (with a warning: it must not sign
releases). Its password comes from PSY_SIGNING_PASSWORD, settings.signing.passwordFile
or passwordCommand, or the terminal.

Options:
  -s, --secret-key FILE  secret key file
  -t, --trusted-comment TEXT  the whole trusted comment (key=value pairs)
      --field KEY=VALUE  add a trusted comment field (repeatable)
  -x, --signature FILE   signature file (one FILE only; default FILE.minisig)
  -l, --legacy           write a legacy (non-prehashed) signature
      --config FILE      use FILE instead of build.config.ts`;

export const command: Command = {
  name: 'sign',
  summary: 'sign files (minisign-compatible, key=value trusted comment)',
  help,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('sign', argv, {
      'secret-key': {type: 'string', short: 's'},
      'trusted-comment': {type: 'string', short: 't'},
      field: {type: 'string', multiple: true},
      signature: {type: 'string', short: 'x'},
      legacy: {type: 'boolean', short: 'l'},
      config: {type: 'string'},
    });
    if (positionals.length === 0) throw new PsyError('usage', 'no file to sign (see psy sign --help)');
    if (values.signature !== undefined && positionals.length > 1) throw new PsyError('usage', '--signature works with one FILE only');
    const extra: Record<string, string> = {};
    for (const f of values.field ?? []) {
      const eq = f.indexOf('=');
      if (eq <= 0) throw new PsyError('usage', `--field ${JSON.stringify(f)} is not KEY=VALUE`);
      extra[f.slice(0, eq)] = f.slice(eq + 1);
    }
    const project = await loadProjectSettings(io.cwd, values.config, false);
    const key = await resolveSecretKey({
      root: project.root,
      settings: parseSigningSettings(project.settings['signing']),
      env: io.env,
      keyPath: values['secret-key'] !== undefined ? resolve(io.cwd, values['secret-key']) : undefined,
      prompt: terminalPrompt(process.stdin, io.stderr),
      warn: (l) => writeLine(io.stderr, l),
    });
    for (const file of positionals) {
      const path = resolve(io.cwd, file);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) throw new PsyError('missing-input', `${file} is not a file`);
      const base =
        values['trusted-comment'] !== undefined
          ? parseTrustedComment(values['trusted-comment'], '--trusted-comment')
          : {filename: basename(path), size: String(st.size)};
      const comment = formatTrustedComment({...base, ...extra});
      const text = await signFile(path, key.secretKey, {trustedComment: comment, algorithm: values.legacy === true ? 'legacy' : 'prehashed'});
      const out = values.signature !== undefined ? resolve(io.cwd, values.signature) : `${path}.minisig`;
      await writeFileAtomic(out, text, 0o644);
      writeLine(io.stdout, `${file}: signed by ${key.path}, trusted comment: ${comment}`);
    }
    return 0;
  },
};
