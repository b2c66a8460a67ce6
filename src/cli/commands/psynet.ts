import {PsyError} from '../../errors.js';
import {loadIdentities} from '../../node/age.js';
import {DEFAULT_CA_NAME, psynetCertDetails} from '../../node/keys.js';
import {signNode} from '../../node/nodes.js';
import {loadNodeProject} from '../../node/project.js';
import {requireRecipients} from '../../node/settings.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

const help = `Usage: psy psynet <subcommand> [options]

The psynet (nebula) CA lives in psynet/ beside build.config.ts: ca.crt (public) and
ca.key.age (the CA key, encrypted to settings.nodes.recipients). Made once.

Subcommands:
  ca init [--name NAME] [--duration D]
                     make the CA with nebula-cert (default name "${DEFAULT_CA_NAME}",
                     duration 876000h, as the original's)
  ca show [--json]   the CA certificate's details
  sign NODE [--ip CIDR] [--groups G[,G]]
                     sign the node's host certificate (its key is kept; a new one when
                     it has none); --ip gives or changes its psynet address

Options:
  --config FILE      use FILE instead of build.config.ts`;

export const command: Command = {
  name: 'psynet',
  summary: 'the psynet (nebula) CA and node certificates',
  help,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === 'ca') {
      const [what, ...args] = rest;
      if (what === 'init') {
        const {values, positionals} = parseCommandArgs('psynet', args, {name: {type: 'string'}, duration: {type: 'string'}, config: {type: 'string'}});
        if (positionals.length) throw new PsyError('usage', `psy psynet ca init takes no arguments (got '${positionals[0]}')`);
        const duration = values.duration ?? '876000h';
        if (!/^\d+(h|m|s)$/.test(duration)) throw new PsyError('usage', `--duration ${duration}: give hours, minutes or seconds (e.g. 876000h)`);
        const p = await loadNodeProject(io.cwd, values.config);
        const cert = await p.psynet.init(values.name ?? DEFAULT_CA_NAME, duration, requireRecipients(p.settings));
        const d = await psynetCertDetails(cert);
        writeLine(
          io.stdout,
          `psynet CA "${d.name}": ${p.psynet.rel('ca.crt')}, key ${p.psynet.rel('ca.key.age')} (encrypted), valid to ${d.notAfter}, fingerprint ${d.fingerprint}`,
        );
        return 0;
      }
      if (what === 'show') {
        const {values, positionals} = parseCommandArgs('psynet', args, {json: {type: 'boolean'}, config: {type: 'string'}});
        if (positionals.length) throw new PsyError('usage', `psy psynet ca show takes no arguments (got '${positionals[0]}')`);
        const p = await loadNodeProject(io.cwd, values.config);
        const d = await psynetCertDetails(await p.psynet.cert());
        if (values.json === true) writeLine(io.stdout, JSON.stringify(d));
        else writeLine(io.stdout, `psynet CA "${d.name}": valid ${d.notBefore} to ${d.notAfter}, fingerprint ${d.fingerprint}`);
        return 0;
      }
      throw new PsyError('usage', `psy psynet ca: unknown subcommand '${what ?? ''}' (init or show)`);
    }
    if (sub === 'sign') {
      const {values, positionals} = parseCommandArgs('psynet', rest, {
        ip: {type: 'string'},
        groups: {type: 'string', multiple: true},
        config: {type: 'string'},
      });
      if (positionals.length !== 1) throw new PsyError('usage', 'psy psynet sign takes one node name');
      const name = positionals[0]!;
      const p = await loadNodeProject(io.cwd, values.config);
      const recipients = requireRecipients(p.settings);
      p.nodes.read(name);
      await p.psynet.cert();
      const record = await signNode(
        p.nodes,
        p.psynet,
        recipients,
        name,
        {...(values.ip === undefined ? {} : {ip: values.ip}), ...(values.groups === undefined ? {} : {groups: values.groups})},
        loadIdentities(io.env),
      );
      const d = await psynetCertDetails(record.public.psynetCert!);
      writeLine(io.stdout, `node ${name}: psynet certificate ${d.ips.join(', ')} groups ${d.groups.join(',') || '-'}, valid to ${d.notAfter}`);
      return 0;
    }
    throw new PsyError(
      'usage',
      sub === undefined ? 'missing subcommand: ca init, ca show or sign (see psy psynet --help)' : `unknown subcommand '${sub}' (see psy psynet --help)`,
    );
  },
};
