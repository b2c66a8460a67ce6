import {lstat, mkdir, readdir, readFile, rm, stat} from 'node:fs/promises';
import {join, relative} from 'node:path';
import {PsyError} from '../errors.js';
import {type PublicKey, type SecretKey} from '../sign/keys.js';
import {signFile, verifyTrustedComment} from '../sign/signature.js';
import {formatTrustedComment, parseTrustedComment} from '../sign/trusted-comment.js';
import {SCRATCH_PREFIX, copyFileAtomic, fsyncDir, replaceSymlink, writeFileAtomic} from '../fs/atomic-write.js';
import {sha256File} from '../fs/sha256-file.js';
import {withReplicaLock} from './replica-lock.js';
import {
  APK_DIR,
  latestName,
  nextVersion,
  OS_DIR,
  parseArtifactName,
  PRIVATE_PREFIX,
  scanArtifact,
  signatureName,
  tarballName,
  type ArtifactKind,
} from './layout.js';
import {readTarFileMembers} from '../tar/index.js';

/** One tarball to publish: an ostar (kind psyopsOS, id = arch) or an esptar (id = platform). */
export interface PublishArtifact {
  readonly kind: ArtifactKind;
  readonly id: string;
  /** The built tarball. */
  readonly path: string;
  /** Where it came from (target name), for messages. */
  readonly source: string;
  /**
   * Trusted comment fields beyond the ones publish computes (type, filename, version,
   * size, sha256). For psyopsOS: architecture, and kernel/alpine when the tarball has no
   * kernel.version / squashfs.alpine_version member.
   */
  readonly fields?: Readonly<Record<string, string>>;
}

/** Names of the points between publish steps; each is durable when reached. */
export type PublishStep = string;

export interface PublishOptions {
  /** Replica root. */
  readonly root: string;
  readonly artifacts: readonly PublishArtifact[];
  /** A built APK repository directory, mirrored into apk/. */
  readonly apkRepository?: string | undefined;
  /** Versions kept per artifact (the one latest names is always kept). */
  readonly keep: number;
  readonly secretKey: SecretKey;
  readonly publicKey: PublicKey;
  readonly now?: Date;
  /** Called after each durable step (progress, and crash tests). */
  readonly onStep?: (step: PublishStep) => void | Promise<void>;
  readonly log?: (line: string) => void;
}

export interface PublishedArtifact {
  readonly kind: ArtifactKind;
  readonly id: string;
  readonly version: string;
  readonly tarball: string;
  readonly signature: string;
  readonly trustedComment: string;
  /** False when the content equals what latest already names (nothing new written). */
  readonly changed: boolean;
}

export interface PublishResult {
  readonly artifacts: PublishedArtifact[];
  readonly apk: {copied: string[]; removed: string[]};
  readonly pruned: string[];
}

/** psyopsOS tarballs carry their kernel and Alpine versions as members (psyops layout). */
const OS_MEMBERS = {kernel: 'kernel.version', alpine: 'squashfs.alpine_version'} as const;

async function artifactFields(a: PublishArtifact, size: number, sha256: string, filename: string, version: string): Promise<Record<string, string>> {
  const fields: Record<string, string> = {type: a.kind, filename, version};
  const extra = {...(a.fields ?? {})};
  if (a.kind === 'psyopsOS') {
    const members = await readTarFileMembers(a.path, Object.values(OS_MEMBERS), {what: `${a.source}: ${a.path}`, code: 'bad-artifact'});
    for (const [field, member] of Object.entries(OS_MEMBERS)) {
      const fromTar = members.get(member)?.toString('utf8').trim();
      const value = extra[field] ?? fromTar;
      if (value === undefined || value === '') {
        throw new PsyError('bad-artifact', `${a.source}: ${a.path} has no ${member} member and no '${field}' field is configured (settings.deaddrop)`);
      }
      fields[field] = value;
      delete extra[field];
    }
    if (extra['architecture'] === undefined) {
      throw new PsyError('bad-config', `${a.source}: the psyopsOS artifact needs an 'architecture' (settings.deaddrop)`);
    }
    fields['architecture'] = extra['architecture'];
    delete extra['architecture'];
  } else {
    fields['platform'] = a.id;
    // psyops ESP tarballs list their extra EFI programs in manifest.json
    const manifest = (await readTarFileMembers(a.path, ['manifest.json'], {what: `${a.source}: ${a.path}`, code: 'bad-artifact'})).get('manifest.json');
    if (manifest !== undefined && extra['efi_programs'] === undefined) {
      let programs: unknown;
      try {
        programs = (JSON.parse(manifest.toString('utf8')) as {extra_programs?: unknown}).extra_programs;
      } catch {
        throw new PsyError('bad-artifact', `${a.source}: ${a.path}: manifest.json is not valid JSON`);
      }
      const names =
        programs !== null && typeof programs === 'object'
          ? Object.keys(programs)
              .map((n) => n.replace(/^\/+/, ''))
              .sort()
          : [];
      if (names.length > 0 && names.every((n) => /^[^\s=,]+$/.test(n))) fields['efi_programs'] = names.join(',');
    }
  }
  for (const reserved of ['type', 'filename', 'version', 'size', 'sha256', 'platform']) {
    if (reserved in extra) throw new PsyError('bad-config', `${a.source}: trusted comment field '${reserved}' is set by publish`);
  }
  Object.assign(fields, extra, {size: String(size), sha256});
  return fields;
}

/** Removes scratch files and half-published versions a killed publish may have left. */
async function repair(osDir: string, log: (l: string) => void): Promise<void> {
  let names: string[];
  try {
    names = await readdir(osDir);
  } catch {
    return;
  }
  const set = new Set(names);
  for (const name of names) {
    if (name.startsWith(SCRATCH_PREFIX)) {
      await rm(join(osDir, name), {force: true});
      continue;
    }
    const p = parseArtifactName(name);
    if (!p) continue;
    // a tarball whose signature was never written is not published; drop it
    if (!p.signature && !set.has(`${name}.minisig`)) {
      log(`removing unsigned leftover ${OS_DIR}/${name}`);
      await rm(join(osDir, name), {force: true});
    }
  }
}

async function latestState(osDir: string, a: PublishArtifact, pk: PublicKey): Promise<{version: string; sha256: string; comment: string} | undefined> {
  const scan = await scanArtifact(osDir, a.kind, a.id);
  if (scan.latest === undefined) return undefined;
  const v = scan.versions.get(scan.latest);
  if (!v?.tarball || !v.signature) return undefined;
  try {
    const text = await readFile(join(osDir, signatureName(a.kind, a.id, scan.latest)), 'utf8');
    // signed by another key (e.g. the development key before a real one): re-publish
    const comment = verifyTrustedComment(text, pk).trustedComment;
    const sha256 = parseTrustedComment(comment)['sha256'];
    return sha256 === undefined ? undefined : {version: scan.latest, sha256, comment};
  } catch {
    return undefined;
  }
}

/**
 * Publishes into the local replica. Per artifact: tarball, then its signature, then the
 * latest link (an atomic symlink replace), so at every instant latest names a complete,
 * signed version. An artifact whose content equals latest's gets no new version.
 */
export async function publishToReplica(opts: PublishOptions): Promise<PublishResult> {
  return withReplicaLock(opts.root, 'psy publish', () => publishLocked(opts));
}

async function publishLocked(opts: PublishOptions): Promise<PublishResult> {
  const log = opts.log ?? (() => undefined);
  const step = async (name: string): Promise<void> => {
    await opts.onStep?.(name);
  };
  if (!Number.isInteger(opts.keep) || opts.keep < 1) {
    throw new PsyError('bad-config', `settings.deaddrop.keep must be an integer ≥ 1, not ${opts.keep}`);
  }
  const osDir = join(opts.root, OS_DIR);
  await mkdir(osDir, {recursive: true});
  const seen = new Set<string>();
  for (const a of opts.artifacts) {
    const key = `${a.kind}.${a.id}`;
    if (seen.has(key)) throw new PsyError('bad-config', `two artifacts publish as ${key}`);
    seen.add(key);
    const st = await stat(a.path).catch(() => undefined);
    if (!st?.isFile()) throw new PsyError('missing-input', `${a.source}: ${a.path} is not a file`);
  }
  await repair(osDir, log);
  await step('repair');

  // Everything that can fail on bad input is checked before the first write.
  const now = opts.now ?? new Date();
  const plans: Array<{a: PublishArtifact; label: string; unchanged?: PublishedArtifact; version: string; tarball: string; comment: string}> = [];
  for (const a of opts.artifacts) {
    const label = `${a.kind}.${a.id}`;
    const [sha256, st] = await Promise.all([sha256File(a.path), stat(a.path)]);
    const current = await latestState(osDir, a, opts.publicKey);
    if (current && current.sha256 === sha256) {
      const unchanged: PublishedArtifact = {
        kind: a.kind,
        id: a.id,
        version: current.version,
        tarball: `${OS_DIR}/${tarballName(a.kind, a.id, current.version)}`,
        signature: `${OS_DIR}/${signatureName(a.kind, a.id, current.version)}`,
        trustedComment: current.comment,
        changed: false,
      };
      plans.push({a, label, unchanged, version: current.version, tarball: '', comment: current.comment});
      continue;
    }
    const scan = await scanArtifact(osDir, a.kind, a.id);
    const version = nextVersion(now, scan.versions.keys());
    const tarball = tarballName(a.kind, a.id, version);
    const comment = formatTrustedComment(await artifactFields(a, st.size, sha256, tarball, version));
    plans.push({a, label, version, tarball, comment});
  }
  if (opts.apkRepository !== undefined) {
    const st = await stat(opts.apkRepository).catch(() => undefined);
    if (!st?.isDirectory()) throw new PsyError('missing-input', `APK repository ${opts.apkRepository} is not a directory`);
  }

  const artifacts: PublishedArtifact[] = [];
  for (const {a, label, unchanged, version, tarball, comment} of plans) {
    if (unchanged) {
      log(`${label}: unchanged, latest stays ${version}`);
      artifacts.push(unchanged);
      continue;
    }
    await copyFileAtomic(a.path, join(osDir, tarball));
    await step(`tarball:${label}`);
    // sign the replica's copy: what was signed is exactly what is published
    const sigText = await signFile(join(osDir, tarball), opts.secretKey, {trustedComment: comment});
    await writeFileAtomic(join(osDir, `${tarball}.minisig`), sigText);
    await step(`signature:${label}`);
    await replaceSymlink(`${tarball}.minisig`, join(osDir, latestName(a.kind, a.id)));
    await step(`latest:${label}`);
    log(`${label}: published ${version}`);
    artifacts.push({
      kind: a.kind,
      id: a.id,
      version,
      tarball: `${OS_DIR}/${tarball}`,
      signature: `${OS_DIR}/${tarball}.minisig`,
      trustedComment: comment,
      changed: true,
    });
  }

  const apk = opts.apkRepository !== undefined ? await mirrorApk(opts.apkRepository, join(opts.root, APK_DIR), step) : {copied: [], removed: []};

  const pruned: string[] = [];
  for (const a of opts.artifacts) {
    const scan = await scanArtifact(osDir, a.kind, a.id);
    const versions = [...scan.versions.keys()].sort().reverse();
    const keep = new Set(versions.slice(0, opts.keep));
    if (scan.latest !== undefined) keep.add(scan.latest);
    for (const v of versions) {
      if (keep.has(v)) continue;
      // signature first: a remaining signature always has its tarball
      for (const name of [signatureName(a.kind, a.id, v), tarballName(a.kind, a.id, v)]) {
        await rm(join(osDir, name), {force: true});
        pruned.push(`${OS_DIR}/${name}`);
      }
    }
    await fsyncDir(osDir);
    await step(`prune:${a.kind}.${a.id}`);
  }
  return {artifacts, apk, pruned};
}

async function walkFiles(root: string, dir = root, out: string[] = []): Promise<string[]> {
  for (const e of await readdir(dir, {withFileTypes: true})) {
    if (e.name.startsWith(PRIVATE_PREFIX)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walkFiles(root, p, out);
    else if (e.isFile()) out.push(relative(root, p));
  }
  return out;
}

const isIndex = (rel: string): boolean => /(^|\/)APKINDEX\.tar\.gz$/.test(rel);

/**
 * Makes apk/ equal to the built repository: packages first, then the indexes that name
 * them, deletions last, so the replica's index never lists a package it lacks.
 */
async function mirrorApk(source: string, dest: string, step: (name: string) => Promise<void>): Promise<{copied: string[]; removed: string[]}> {
  const st = await stat(source).catch(() => undefined);
  if (!st?.isDirectory()) throw new PsyError('missing-input', `APK repository ${source} is not a directory`);
  await mkdir(dest, {recursive: true});
  const files = (await walkFiles(source)).sort();
  const existing = new Set(await walkFiles(dest));
  const copied: string[] = [];
  const copyIfChanged = async (rel: string): Promise<void> => {
    const from = join(source, rel);
    const to = join(dest, rel);
    const old = await lstat(to).catch(() => undefined);
    if (old?.isFile() && old.size === (await stat(from)).size && (await sha256File(from)) === (await sha256File(to))) return;
    await mkdir(join(to, '..'), {recursive: true});
    await copyFileAtomic(from, to);
    copied.push(`${APK_DIR}/${rel}`);
  };
  for (const rel of files.filter((f) => !isIndex(f))) await copyIfChanged(rel);
  await step('apk:packages');
  for (const rel of files.filter(isIndex)) await copyIfChanged(rel);
  await step('apk:index');
  const keep = new Set(files);
  const removed: string[] = [];
  for (const rel of [...existing].sort()) {
    if (keep.has(rel)) continue;
    await rm(join(dest, rel), {force: true});
    removed.push(`${APK_DIR}/${rel}`);
  }
  await step('apk:delete');
  return {copied, removed};
}
