import {publishProject} from '../../deaddrop/publish-project.js';
import {PsyError} from '../../errors.js';
import {terminalPrompt} from '../../sign/key-source.js';
import {parseCommandArgs, plural, writeLine, type Command} from '../command.js';
import {StatusPrinter} from '../status.js';
import {progressPrinter} from './deaddrop.js';

const help = `Usage: psy publish [options]

Builds what is stale among the targets settings.deaddrop names (ostar, esptar, apk),
copies the artifacts into the local deaddrop replica under a new version, signs them,
moves each latest link, prunes old versions (settings.deaddrop.keep, never what latest
names), and pushes the replica to S3 when settings.deaddrop.s3 names a bucket.
Artifacts whose content equals what latest already names get no new version.

Order, so a reader never sees a pointer to something missing: tarball, signature, latest;
in the bucket: blobs, signatures, latest redirects, deletions last.

Options:
      --no-build     do not build; fail if a target is stale
      --no-sync      publish into the replica only
  -j, --jobs N       parallel build steps
      --config FILE  use FILE instead of build.config.ts`;

export const command: Command = {
  name: 'publish',
  summary: 'build, sign and publish artifacts into the deaddrop (and S3)',
  help,
  async run(argv, io) {
    const {values} = parseCommandArgs(
      'publish',
      argv,
      {
        'no-build': {type: 'boolean'},
        'no-sync': {type: 'boolean'},
        jobs: {type: 'string', short: 'j'},
        config: {type: 'string'},
      },
      false,
    );
    const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
    if (jobs !== undefined && (!Number.isInteger(jobs) || jobs < 1)) throw new PsyError('usage', `--jobs wants a positive integer, not '${values.jobs}'`);
    const status = new StatusPrinter({out: io.stderr, tty: false, verbose: false});
    const abort = new AbortController();
    const onSignal = (sig: NodeJS.Signals): void => abort.abort(sig);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const r = await publishProject({
        cwd: io.cwd,
        configPath: values.config,
        env: io.env,
        build: values['no-build'] !== true,
        sync: values['no-sync'] !== true,
        jobs,
        prompt: terminalPrompt(process.stdin, io.stderr),
        log: (l) => writeLine(io.stdout, l),
        warn: (l) => writeLine(io.stderr, l),
        buildLogger: status,
        signal: abort.signal,
        onProgress: progressPrinter(io.stderr),
      });
      status.close();
      const changed = r.publish.artifacts.filter((a) => a.changed).length;
      writeLine(
        io.stdout,
        `replica ${r.settings.root}: ${changed} new version${changed === 1 ? '' : 's'}, ${r.publish.artifacts.length - changed} unchanged, ` +
          `${plural(r.publish.apk.copied.length, 'APK file')} copied, ${plural(r.publish.pruned.length, 'file')} pruned`,
      );
      if (r.sync) {
        writeLine(
          io.stdout,
          `s3://${r.settings.s3!.bucket}/${r.settings.s3!.prefix}: ${r.sync.uploaded} uploaded (${r.sync.bytes} bytes), ` +
            `${plural(r.sync.redirects, 'redirect')}, ${r.sync.deleted} deleted, ${r.sync.plan.unchanged} unchanged`,
        );
      }
      return 0;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
