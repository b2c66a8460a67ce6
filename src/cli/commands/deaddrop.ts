import {loadProjectSettings} from '../../deaddrop/project.js';
import {createS3Client} from '../../deaddrop/s3-client.js';
import {serveReplica} from '../../deaddrop/serve.js';
import {parseDeaddropSettings, type DeaddropSettings} from '../../deaddrop/settings.js';
import {pull, push, type SyncProgress, type SyncResult} from '../../deaddrop/sync.js';
import {PsyError} from '../../errors.js';
import {parseCommandArgs, plural, writeLine, type Command, type CommandIo} from '../command.js';

const help = `Usage: psy deaddrop <forcepush|forcepull|serve> [options]

  forcepush  make the bucket equal to the local replica (upload what differs by
             content hash, write latest links as redirect objects, delete extras last)
  forcepull  make the local replica equal to the bucket (redirects become symlinks;
             a redirect to a foreign host is refused)
  serve      serve the replica over HTTP; symlinks (latest) answer 301 redirects

Options:
  -n, --dry-run          forcepush/forcepull: print the plan, change nothing
      --listen HOST:PORT serve: address (default 127.0.0.1:8080)
      --root DIR         replica root (default settings.deaddrop.root or cache/deaddrop)
      --config FILE      use FILE instead of build.config.ts

S3 settings come from settings.deaddrop.s3 (bucket, prefix, region, endpoint,
forcePathStyle, concurrency); credentials from the AWS SDK's default chain
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, SSO, instance roles).`;

/** A progress line per large transfer, at most every 10%. */
export function progressPrinter(out: NodeJS.WritableStream): (p: SyncProgress) => void {
  const shown = new Map<string, number>();
  return (p) => {
    if (p.total < 64 * 2 ** 20) return;
    const pct = Math.floor((p.loaded / p.total) * 10) * 10;
    if ((shown.get(p.key) ?? -1) >= pct) return;
    shown.set(p.key, pct);
    writeLine(out, `${p.key}: ${pct}% of ${(p.total / 2 ** 20).toFixed(0)} MiB`);
  };
}

function printPlan(io: CommandIo, r: SyncResult, dryRun: boolean): void {
  if (dryRun) {
    for (const a of r.plan.actions) {
      const what =
        a.op === 'transfer'
          ? `${r.plan.direction === 'push' ? 'upload' : 'download'} ${a.key} (${a.size} bytes)`
          : a.op === 'redirect'
            ? `redirect ${a.key} -> ${a.target}`
            : `delete ${a.key}`;
      writeLine(io.stdout, `${a.phase.padEnd(9)} ${what}`);
    }
    writeLine(io.stdout, `${plural(r.plan.actions.length, 'action')}, ${r.plan.unchanged} unchanged (dry run, nothing changed)`);
    return;
  }
  const moved = r.plan.direction === 'push' ? `${r.uploaded} uploaded` : `${r.downloaded} downloaded`;
  writeLine(io.stdout, `${moved} (${plural(r.bytes, 'byte')}), ${plural(r.redirects, 'redirect')}, ${r.deleted} deleted, ${r.plan.unchanged} unchanged`);
}

async function settingsFor(io: CommandIo, config: string | undefined, root: string | undefined, needS3: boolean): Promise<DeaddropSettings> {
  const project = await loadProjectSettings(io.cwd, config, needS3 || root === undefined);
  const s = parseDeaddropSettings(project.settings['deaddrop'], project.root);
  const withRoot = root === undefined ? s : {...s, root: (await import('node:path')).resolve(io.cwd, root)};
  if (needS3 && withRoot.s3 === undefined) throw new PsyError('bad-config', 'settings.deaddrop.s3 is not set: no bucket to sync with');
  return withRoot;
}

export const command: Command = {
  name: 'deaddrop',
  summary: 'sync the deaddrop replica with S3 (forcepush, forcepull) or serve it',
  help,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    const {values} = parseCommandArgs(
      'deaddrop',
      rest,
      {
        'dry-run': {type: 'boolean', short: 'n'},
        listen: {type: 'string'},
        root: {type: 'string'},
        config: {type: 'string'},
      },
      false,
    );
    switch (sub) {
      case 'forcepush':
      case 'forcepull': {
        const s = await settingsFor(io, values.config, values.root, true);
        const s3 = s.s3!;
        const client = createS3Client(s3, io.env);
        const dryRun = values['dry-run'] === true;
        const opts = {root: s.root, s3, client, dryRun, onProgress: progressPrinter(io.stderr)};
        const r = sub === 'forcepush' ? await push(opts) : await pull(opts);
        printPlan(io, r, dryRun);
        return 0;
      }
      case 'serve': {
        const s = await settingsFor(io, values.config, values.root, false);
        const m = /^(.*):(\d+)$/.exec(values.listen ?? '127.0.0.1:8080');
        if (!m) throw new PsyError('usage', `--listen wants HOST:PORT, not '${values.listen}'`);
        const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
        const server = await serveReplica({root: s.root, host, port: Number(m[2]), log: (l) => writeLine(io.stderr, l)}).catch((err: NodeJS.ErrnoException) => {
          throw new PsyError('serve', `cannot serve ${s.root} on ${values.listen ?? '127.0.0.1:8080'}: ${err.code ?? err.message}`);
        });
        writeLine(io.stdout, `serving ${s.root} at ${server.url}/`);
        await new Promise<void>((ok) => {
          const stop = (): void => void server.close().then(ok);
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        return 0;
      }
      case undefined:
        throw new PsyError('usage', 'a subcommand is needed: forcepush, forcepull or serve (see psy deaddrop --help)');
      default:
        throw new PsyError('usage', `unknown deaddrop subcommand '${sub}' (forcepush, forcepull or serve)`);
    }
  },
};
