import {readFileSync} from 'node:fs';
import {copyFile, mkdir, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {otherSlot, slotFromLabel, slotLabel, type SlotName} from '../boot/grub-cfg.js';
import {isPsyError, PsyError} from '../errors.js';
import {parsePublicKey, type PublicKey} from '../sign/keys.js';
import {markGood, readStatus, setDefault, versionFloor, type SystemStatus} from '../upgrade/control.js';
import {downloadVerified, fetchVerifiedMeta, UNSIZED_DOWNLOAD_CAP} from '../upgrade/fetch-update.js';
import {apply, type ApplyTarget, type UpgradeContext} from '../upgrade/neuralupgrade.js';
import {openImage, openLive, type Place} from '../upgrade/place.js';
import {openRepository, type Repository} from '../upgrade/repository.js';
import {compareVersions, type UpdateMeta, type UpdateTarget} from '../upgrade/update-meta.js';
import {parseCommandArgs, writeLine, type Command, type CommandIo} from './command.js';

export const NEURALUPGRADE_VERSION = '2.0.0';
export const DEFAULT_PUBKEY = '/etc/psyopsOS/minisign.pubkey';
/** One line in the node's root: the repository, when neither --repository nor the environment names one. */
export const DEFAULT_REPOSITORY_FILE = '/etc/psyopsOS/repository';

/** The repository a root configures (first non-empty line of the file), if any. */
export function readRepositoryFile(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
}

const GLOBAL_HELP = `Global options:
  --disk FILE          act on a disk image (partitions from its GPT) instead of this node
  --booted A|B         the booted slot (default: psyopsos= from the kernel command line)
  --cmdline PATH       kernel command line to read (default /proc/cmdline)
  --dev DIR            device directory holding disk/by-partlabel, disk/by-label (default /dev)
  --sys DIR            sysfs, for partitions by GPT name and their sizes (default /sys)
  --repository R       update repository: a folder, http(s)://URL or s3://bucket/prefix
                       (default: $NEURALUPGRADE_REPOSITORY, else /etc/psyopsOS/repository)
  --s3-endpoint URL    S3 API endpoint for s3:// repositories (S3-compatible servers)
  --pubkey FILE        minisign public key (default ${DEFAULT_PUBKEY})
  --arch ARCH          OS architecture (default x86_64)
  --platform P         ESP platform (default x86_64-uefi)
  --tmpdir DIR         where downloads go before they are verified (default: system temp)
  --allow-downgrade    accept versions at or below the installed high-water mark
  --json               machine-readable output (errors too, as {"error": {...}} on stdout)
  -v, --verbose        print each write step

Exit status: 0 success, 1 failure (check: an update is available), 2 usage error.`;

const globalOptions = {
  disk: {type: 'string'},
  booted: {type: 'string'},
  cmdline: {type: 'string'},
  dev: {type: 'string'},
  sys: {type: 'string'},
  repository: {type: 'string'},
  's3-endpoint': {type: 'string'},
  pubkey: {type: 'string'},
  arch: {type: 'string'},
  platform: {type: 'string'},
  tmpdir: {type: 'string'},
  'allow-downgrade': {type: 'boolean'},
  json: {type: 'boolean'},
  verbose: {type: 'boolean', short: 'v'},
} as const;

type GlobalValues = {
  disk?: string;
  booted?: string;
  cmdline?: string;
  dev?: string;
  sys?: string;
  repository?: string;
  's3-endpoint'?: string;
  pubkey?: string;
  arch?: string;
  platform?: string;
  tmpdir?: string;
  'allow-downgrade'?: boolean;
  json?: boolean;
  verbose?: boolean;
};

function parseSlot(value: string, what: string): SlotName {
  const v = value.trim();
  const s = v === 'a' || v === 'A' ? 'A' : v === 'b' || v === 'B' ? 'B' : slotFromLabel(v);
  if (!s) throw new PsyError('usage', `${what}: '${value}' is not a slot (A, B, psyopsOS-A or psyopsOS-B)`);
  return s;
}

class Session {
  readonly g: GlobalValues;
  readonly io: CommandIo;
  #place: Place | undefined;
  #pubkey: PublicKey | undefined;
  constructor(g: GlobalValues, io: CommandIo) {
    this.g = g;
    this.io = io;
  }
  get json(): boolean {
    return this.g.json === true;
  }
  out(line = ''): void {
    writeLine(this.io.stdout, line);
  }
  emit(value: unknown): void {
    writeLine(this.io.stdout, JSON.stringify(value, null, 2));
  }
  log = (line: string): void => {
    if (this.g.verbose) writeLine(this.io.stderr, line);
  };
  get osTarget(): UpdateTarget {
    return {kind: 'os', arch: this.g.arch ?? 'x86_64'};
  }
  get espTarget(): UpdateTarget {
    return {kind: 'esp', arch: this.g.platform ?? 'x86_64-uefi'};
  }
  pubkey(): PublicKey {
    if (!this.#pubkey) {
      const path = this.g.pubkey ?? DEFAULT_PUBKEY;
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        throw new PsyError('missing-input', `cannot read the public key ${path} (give --pubkey FILE)`);
      }
      this.#pubkey = parsePublicKey(text, path);
    }
    return this.#pubkey;
  }
  repository(required: boolean): Repository | undefined {
    const spec = this.g.repository ?? this.io.env['NEURALUPGRADE_REPOSITORY'] ?? readRepositoryFile(DEFAULT_REPOSITORY_FILE);
    if (!spec) {
      if (required)
        throw new PsyError(
          'usage',
          `no repository: give --repository DIR|URL|s3://bucket/prefix, set NEURALUPGRADE_REPOSITORY or write it into ${DEFAULT_REPOSITORY_FILE}`,
        );
      return undefined;
    }
    return openRepository(spec, this.g['s3-endpoint'] ? {endpoint: this.g['s3-endpoint']} : {});
  }
  async place(): Promise<Place> {
    if (!this.#place) {
      const booted = this.g.booted !== undefined ? parseSlot(this.g.booted, '--booted') : undefined;
      if (this.g.disk !== undefined) {
        const p = await openImage(this.g.disk);
        this.#place = {...p, booted};
      } else {
        this.#place = await openLive({
          ...(this.g.cmdline ? {cmdlinePath: this.g.cmdline} : {}),
          ...(this.g.dev ? {devDir: this.g.dev} : {}),
          ...(this.g.sys ? {sysDir: this.g.sys} : {}),
          ...(booted ? {bootedOverride: booted} : {}),
        });
      }
    }
    return this.#place;
  }
  async context(repoRequired: boolean): Promise<UpgradeContext> {
    const repository = this.repository(repoRequired);
    return {
      place: await this.place(),
      pubkey: this.pubkey(),
      osTarget: this.osTarget,
      espTarget: this.espTarget,
      tmpDir: this.g.tmpdir ?? tmpdir(),
      allowDowngrade: this.g['allow-downgrade'] === true,
      log: this.log,
      ...(repository ? {repository} : {}),
    };
  }
}

interface Sub {
  readonly summary: string;
  readonly usage: string;
  readonly options: Record<string, {type: 'string' | 'boolean'; short?: string; multiple?: boolean}>;
  run(s: Session, positionals: string[], values: Record<string, unknown>): Promise<number>;
}

function slotLine(st: SystemStatus, slot: SlotName): string {
  const s = st.slots[slot];
  const tags = [
    st.booted === slot ? 'booted' : st.booted !== undefined ? 'nonbooted' : undefined,
    st.nextBoot.knownGood === slot ? 'default' : undefined,
    st.nextBoot.boots === slot ? 'next boot' : undefined,
  ].filter(Boolean);
  const version = s.version ? `version ${s.version}` : 'no OS recorded';
  return `${slotLabel(slot)}: ${version} (${s.condition}${s.detail ? ': ' + s.detail : ''})${tags.length ? ' [' + tags.join(', ') + ']' : ''}`;
}

function printStatus(s: Session, st: SystemStatus): void {
  s.out(`${st.place}`);
  s.out(`booted: ${st.booted ? slotLabel(st.booted) : '(none)'}`);
  for (const slot of ['A', 'B'] as const) s.out(slotLine(st, slot));
  s.out(`ESP: ${st.esp.version ? 'version ' + st.esp.version : 'no version recorded'}, ${st.esp.bootable ? `bootable (${st.esp.grubDir})` : 'NOT bootable'}`);
  const copy = (name: string, c: SystemStatus['env']['primary']) =>
    `${name}: ${
      !c.present
        ? 'missing'
        : !c.valid
          ? 'damaged'
          : Object.entries(c.vars)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ') || '(empty)'
    }`;
  s.out(copy('grubenv', st.env.primary));
  s.out(copy('grubenv mirror', st.env.mirror));
  s.out(`high-water mark: ${st.env.highWaterMark ?? '(none)'}`);
  s.out(`next boot: ${st.nextBoot.boots ? slotLabel(st.nextBoot.boots) : 'NOTHING BOOTS'} (${st.nextBoot.reason})`);
  if (st.nextBoot.trySpent) s.out(`if that boot fails: ${st.bootAfterThat.boots ? slotLabel(st.bootAfterThat.boots) : 'nothing'}`);
}

function metaJson(m: UpdateMeta) {
  return {type: m.type, filename: m.filename, version: m.version, size: m.size, fields: m.fields};
}

const subs: Record<string, Sub> = {
  status: {
    summary: 'slots, ESP, environment block and which slot boots next',
    usage: 'neuralupgrade status [--verify]\n\n  --verify   read every slot member back and compare with its record',
    options: {verify: {type: 'boolean'}},
    async run(s, _p, v) {
      const st = await readStatus(await s.place(), {pubkey: s.pubkey(), verifyContent: v['verify'] === true});
      if (s.json) s.emit(st);
      else printStatus(s, st);
      return 0;
    },
  },
  show: {
    summary: 'the latest versions in the repository and what each slot and the ESP hold',
    usage: 'neuralupgrade show\n\nOff a node (no --disk, no psyopsos= on the kernel command line) it shows the repository only.',
    options: {},
    async run(s) {
      const repo = s.repository(false);
      // on a workstation (no --disk, not booted from a slot) with a repository: only the repository
      let place: Place | undefined;
      try {
        place = await s.place();
      } catch (err) {
        if (!(isPsyError(err) && err.code === 'not-psyopsos' && repo && s.g.disk === undefined)) throw err;
      }
      const st = place ? await readStatus(place, {pubkey: s.pubkey()}) : undefined;
      const latest: Record<string, unknown> = {};
      if (repo) {
        for (const t of [s.osTarget, s.espTarget]) {
          try {
            latest[t.kind] = metaJson((await fetchVerifiedMeta(repo, 'latest', {target: t, pubkey: s.pubkey(), allowDowngrade: true})).meta);
          } catch (err) {
            if (!isPsyError(err)) throw err;
            latest[t.kind] = {error: err.message};
          }
        }
      }
      if (s.json) {
        s.emit({repository: repo?.description, latest, booted: st?.booted, nonbooted: st?.booted ? otherSlot(st.booted) : undefined, status: st});
        return 0;
      }
      if (repo) {
        s.out(`repository: ${repo.description}`);
        for (const [k, m] of Object.entries(latest)) {
          const mm = m as {version?: string; filename?: string; error?: string};
          s.out(`  latest ${k === 'os' ? 'psyopsOS' : 'psyopsESP'}: ${mm.error ? mm.error : `${mm.version} (${mm.filename})`}`);
        }
      }
      if (st) printStatus(s, st);
      return 0;
    },
  },
  check: {
    summary: 'compare installed versions with the repository',
    usage:
      'neuralupgrade check [--os-version V|latest] [--esp-version V|latest] [--target a|b|nonbooted|efisys ...]\n\nExit 0 when everything is up to date, 1 when an update is available.',
    options: {'os-version': {type: 'string'}, 'esp-version': {type: 'string'}, target: {type: 'string', multiple: true}},
    async run(s, _p, v) {
      const place = await s.place();
      const repo = s.repository(true)!;
      const targets = (v['target'] as string[] | undefined) ?? (place.booted ? ['nonbooted', 'efisys'] : ['a', 'b', 'efisys']);
      const st = await readStatus(place, {pubkey: s.pubkey()});
      const rows: Array<{target: string; installed: string | undefined; available: string; upToDate: boolean}> = [];
      for (const t of targets) {
        const isEsp = t === 'efisys';
        const slot = t === 'nonbooted' ? (place.booted ? otherSlot(place.booted) : undefined) : t === 'a' ? 'A' : t === 'b' ? 'B' : undefined;
        if (!isEsp && slot === undefined) throw new PsyError('usage', `unknown or impossible check target '${t}'`);
        const version = (isEsp ? v['esp-version'] : v['os-version']) as string | undefined;
        const {meta} = await fetchVerifiedMeta(repo, version ?? 'latest', {target: isEsp ? s.espTarget : s.osTarget, pubkey: s.pubkey(), allowDowngrade: true});
        const installed = isEsp ? st.esp.version : st.slots[slot!].version;
        rows.push({
          target: isEsp ? 'ESP' : slotLabel(slot!),
          installed,
          available: meta.version,
          upToDate: installed !== undefined && compareVersions(installed, meta.version) >= 0,
        });
      }
      if (s.json) s.emit(rows);
      else
        for (const r of rows)
          s.out(
            r.upToDate
              ? `${r.target} is version ${r.available}: up to date`
              : `${r.target}: currently ${r.installed ?? 'nothing'}, repository has ${r.available}`,
          );
      return rows.every((r) => r.upToDate) ? 0 : 1;
    },
  },
  download: {
    summary: 'download and verify updates into a folder (with their signatures)',
    usage: 'neuralupgrade download [--os-version V|latest] [--esp-version V|latest] OUTPUT_DIR\n\nWith neither version option, downloads the latest OS.',
    options: {'os-version': {type: 'string'}, 'esp-version': {type: 'string'}},
    async run(s, p, v) {
      const out = p[0];
      if (!out || p.length > 1) throw new PsyError('usage', 'download needs one OUTPUT_DIR');
      const repo = s.repository(true)!;
      const wanted: Array<[UpdateTarget, string]> = [];
      if (v['os-version'] !== undefined || v['esp-version'] === undefined) wanted.push([s.osTarget, (v['os-version'] as string | undefined) ?? 'latest']);
      if (v['esp-version'] !== undefined) wanted.push([s.espTarget, v['esp-version'] as string]);
      await mkdir(out, {recursive: true});
      const done = [];
      for (const [target, version] of wanted) {
        const u = await downloadVerified(
          repo,
          version,
          {target, pubkey: s.pubkey(), allowDowngrade: true, maxSize: UNSIZED_DOWNLOAD_CAP},
          s.g.tmpdir ?? tmpdir(),
          {keepTar: true},
        );
        try {
          await copyFile(u.tarPath!, join(out, u.meta.filename));
          await writeFile(join(out, `${u.meta.filename}.minisig`), u.signatureText);
        } finally {
          await u.cleanup();
        }
        done.push(metaJson(u.meta));
        if (!s.json) s.out(`${join(out, u.meta.filename)}: version ${u.meta.version}, signature verified`);
      }
      if (s.json) s.emit(done);
      return 0;
    },
  },
  apply: {
    summary: 'verify and write updates to a|b|nonbooted and/or efisys',
    usage: `neuralupgrade apply TARGET... [--os-version V|latest | --os-tar FILE] [--esp-version V|latest | --esp-tar FILE]
                    [--default A|B] [--no-try]

Targets: a, b, nonbooted (the slot not running), efisys (the ESP).
On a node the written slot is tried once at the next boot; run 'neuralupgrade mark-good'
from it once it is healthy. --os-tar/--esp-tar need FILE.minisig beside them.
  --default A|B   make this slot the known-good default afterwards (image builds)
  --no-try        write the slot but leave the boot choice alone`,
    options: {
      'os-version': {type: 'string'},
      'os-tar': {type: 'string'},
      'esp-version': {type: 'string'},
      'esp-tar': {type: 'string'},
      default: {type: 'string'},
      'no-try': {type: 'boolean'},
    },
    async run(s, p, v) {
      const targets = p.map((t) => {
        if (t !== 'a' && t !== 'b' && t !== 'nonbooted' && t !== 'efisys') throw new PsyError('usage', `unknown apply target '${t}' (a, b, nonbooted, efisys)`);
        return t as ApplyTarget;
      });
      const needsRepo = v['os-version'] !== undefined || v['esp-version'] !== undefined;
      const ctx = await s.context(needsRepo);
      const result = await apply(ctx, {
        targets,
        ...(v['os-version'] !== undefined ? {osVersion: v['os-version'] as string} : {}),
        ...(v['os-tar'] !== undefined ? {osTar: v['os-tar'] as string} : {}),
        ...(v['esp-version'] !== undefined ? {espVersion: v['esp-version'] as string} : {}),
        ...(v['esp-tar'] !== undefined ? {espTar: v['esp-tar'] as string} : {}),
        ...(v['no-try'] ? {tryOnce: false} : {}),
        ...(v['default'] !== undefined ? {defaultSlot: parseSlot(v['default'] as string, '--default')} : {}),
      });
      if (s.json) s.emit(result);
      else {
        if (result.esp) s.out(`ESP: version ${result.esp.version} installed (${result.esp.grubDir})`);
        for (const r of result.slots) s.out(`${slotLabel(r.slot)}: version ${r.version} written and verified`);
        if (result.tryOnce) s.out(`next boot tries ${slotLabel(result.tryOnce)} once; run 'neuralupgrade mark-good' there when it is healthy`);
      }
      return 0;
    },
  },
  'set-default': {
    summary: 'make a slot the known-good default',
    usage: 'neuralupgrade set-default A|B|psyopsOS-A|psyopsOS-B [--force]\n\n  --force   also when the slot holds no complete, signed OS',
    options: {force: {type: 'boolean'}},
    async run(s, p, v) {
      if (p.length !== 1) throw new PsyError('usage', 'set-default needs one slot');
      const slot = parseSlot(p[0]!, 'set-default');
      await setDefault(await s.place(), slot, {pubkey: s.pubkey(), force: v['force'] === true});
      if (s.json) s.emit({default: slot});
      else s.out(`default boot slot: ${slotLabel(slot)}`);
      return 0;
    },
  },
  'mark-good': {
    summary: 'the booted slot passed its checks: make it the default, raise the high-water mark',
    usage: 'neuralupgrade mark-good [--slot A|B]\n\n  --slot   the slot to mark (default: the booted one; needed with --disk)',
    options: {slot: {type: 'string'}},
    async run(s, _p, v) {
      const place = await s.place();
      const slot = v['slot'] !== undefined ? parseSlot(v['slot'] as string, '--slot') : undefined;
      const r = await markGood(place, {pubkey: s.pubkey(), ...(slot ? {slot} : {})});
      const floor = await versionFloor(place);
      if (s.json) s.emit({...r, highWaterMark: floor});
      else s.out(`${slotLabel(r.slot)} (${r.version ? 'version ' + r.version : 'no version record'}) is the default; high-water mark ${floor ?? '(none)'}`);
      return 0;
    },
  },
};

function topHelp(): string {
  const width = Math.max(...Object.keys(subs).map((k) => k.length));
  return [
    'neuralupgrade: verified A/B updates for psyopsOS',
    '',
    'Usage: neuralupgrade <command> [options]',
    '',
    'Commands:',
    ...Object.entries(subs).map(([k, c]) => `  ${k.padEnd(width)}  ${c.summary}`),
    '',
    GLOBAL_HELP,
  ].join('\n');
}

export const command: Command = {
  name: 'neuralupgrade',
  summary: 'verified A/B updates for psyopsOS',
  help: topHelp(),
  run: (argv, io) => main(argv, io),
};

/**
 * Global options may come before the command (`neuralupgrade --disk IMG apply a`): those
 * are taken off the front, with their values, and parsed with the command's options.
 */
function splitGlobals(argv: readonly string[]): {leading: string[]; name: string | undefined; rest: string[]} {
  const leading: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-') || a === '-h' || a === '--help' || a === '-V' || a === '--version') break;
    const long = a.startsWith('--') ? a.slice(2).split('=')[0]! : undefined;
    const spec =
      long !== undefined
        ? (globalOptions as Record<string, {type: string; short?: string}>)[long]
        : Object.values(globalOptions).find((o) => 'short' in o && `-${o.short}` === a);
    // an unknown option is left for the command's parser to report
    if (!spec) break;
    leading.push(a);
    if (spec.type === 'string' && !a.includes('=')) {
      if (argv[i + 1] === undefined) break;
      leading.push(argv[++i]!);
    }
  }
  return {leading, name: argv[i], rest: argv.slice(i + 1)};
}

export async function main(argv: string[], io?: Partial<CommandIo>): Promise<number> {
  const full: CommandIo = {
    stdout: io?.stdout ?? process.stdout,
    stderr: io?.stderr ?? process.stderr,
    cwd: io?.cwd ?? process.cwd(),
    env: io?.env ?? process.env,
  };
  const {leading, name, rest: after} = splitGlobals(argv);
  const rest = [...leading, ...after];
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    writeLine(name === undefined ? full.stderr : full.stdout, topHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    writeLine(full.stdout, `neuralupgrade ${NEURALUPGRADE_VERSION}`);
    return 0;
  }
  const sub = subs[name];
  if (!sub && name.startsWith('-')) {
    writeLine(full.stderr, `neuralupgrade: unknown option '${name}' (see neuralupgrade --help)`);
    return 2;
  }
  if (!sub) {
    writeLine(full.stderr, `neuralupgrade: unknown command '${name}' (see neuralupgrade --help)`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    writeLine(full.stdout, `Usage: ${sub.usage}\n\n${GLOBAL_HELP}`);
    return 0;
  }
  try {
    const {values, positionals} = parseCommandArgs(`neuralupgrade ${name}`, rest, {...globalOptions, ...sub.options} as never);
    const s = new Session(values as GlobalValues, full);
    return await sub.run(s, positionals, values as Record<string, unknown>);
  } catch (err) {
    const status = isPsyError(err) ? (err.code === 'usage' ? 2 : 1) : 70;
    // Under --json a failure is JSON too (on stdout, where the answer would have been);
    // the line on stderr stays for people.
    if (rest.includes('--json')) {
      const error = isPsyError(err)
        ? {code: err.code, message: err.message.split('\n')[0]!, status}
        : {code: 'internal', message: err instanceof Error ? err.message : String(err), status};
      writeLine(full.stdout, JSON.stringify({error}, null, 2));
    }
    if (isPsyError(err)) {
      writeLine(full.stderr, `neuralupgrade ${name}: ${err.message.split('\n')[0]}`);
      return status;
    }
    writeLine(full.stderr, `neuralupgrade ${name}: internal error, please report it:`);
    writeLine(full.stderr, err instanceof Error ? (err.stack ?? err.message) : String(err));
    return status;
  }
}
