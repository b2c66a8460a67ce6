/**
 * apk-tools' own solver test vectors (test/*.test with their .repo/.installed files,
 * extracted at test time from the apk-tools source tarball) run through psy's resolver.
 *
 * A vector gives apk's arguments (repositories, installed database, world, command) and
 * what apk prints: the changes in order, or an error. psy's resolver turns a world into
 * a package set; the command layer here turns a vector's command into the world psy
 * resolves (add: world + args; del: world - args; upgrade: same world without
 * preferring what is installed) and the resolved set into apk's change lines against
 * the installed database. A vector matches when psy gives the same change lines in the
 * same order, or refuses where apk errors (psy's own message; apk's text is not
 * compared). Vectors psy does not match are listed in KNOWN_DIFFERENCES with the reason
 * (docs/alpine-packages.md explains them); the test fails when a vector outside the
 * list fails, and when one in the list starts matching, so the list stays true.
 */
import {execFileSync} from 'node:child_process';
import {copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {afterAll, beforeAll, describe, expect, it} from 'vitest';
import {parseIndexText, readApkIndex} from '../src/apk/apkindex.js';
import {loadKeyring} from '../src/apk/keys.js';
import {parseDependency, parseWorldDependency} from '../src/apk/dependency.js';
import type {IndexRecord} from '../src/apk/package-meta.js';
import {resolve, type ResolverRepository} from '../src/apk/resolver.js';
import {compareVersions} from '../src/apk/version.js';
import {APK_TOOLS_VERSION, apkTools, apkToolsTarball, haveApkTools, haveApkToolsSource} from './helpers/apk-tools.js';
import {alpineTestData, haveAlpineTestData} from './helpers/shared-data.js';

// Why psy does not match these vectors (docs/alpine-packages.md, "apk-tools' solver vectors").
const FIX = 'apk fix (reinstall in place): psy builds every root fresh from the lock and has no in-place repair';
const VIRTUAL = "apk add -t (a virtual world package made on the spot): psy's world is package names only";
const FORCE = 'apk --force installs a partial world past errors: psy refuses an incomplete world';
const LATEST = 'apk --latest (fail unless the newest version is chosen): psy has no such mode; a lock pins versions instead';
const PINNED_UPGRADE =
  'upgrade of an installed root with pinned packages: apk keeps the repository tag each installed package came from in its database; psy never changes an installed root in place (A/B images)';
const UPGRADE =
  "upgrade of an installed root (provides swaps, replaced libraries, kept versions): apk's in-place upgrade rules; psy resolves each image from scratch";
const SELF_UPGRADE = "apk's self-upgrade (apk-tools and its libraries first, alone): psy never runs apk on the build host";

/** Vectors psy does not match, and why. */
const KNOWN_DIFFERENCES: Record<string, string> = {
  basic10: FORCE,
  basic11: FORCE,
  basic12: LATEST,
  basic13: LATEST,
  basic18: LATEST,
  basic8: VIRTUAL,
  basic9: VIRTUAL,
  error6: VIRTUAL,
  error7: VIRTUAL,
  fix1: FIX,
  fix2: FIX,
  fix3: FIX,
  fix4: FIX,
  fix5: FIX,
  fix6: FIX,
  pinning10: PINNED_UPGRADE,
  pinning14: VIRTUAL,
  pinning5: PINNED_UPGRADE,
  pinning6: PINNED_UPGRADE,
  pinning7: PINNED_UPGRADE,
  pinning8: PINNED_UPGRADE,
  pinning9: PINNED_UPGRADE,
  'provides-upgrade': UPGRADE,
  provides18: UPGRADE,
  selfupgrade1: SELF_UPGRADE,
  selfupgrade3: SELF_UPGRADE,
  selfupgrade4: SELF_UPGRADE,
  upgrade2: UPGRADE,
  upgrade3: UPGRADE,
  upgrade4: UPGRADE,
};

interface Vector {
  readonly name: string;
  readonly args: string[];
  readonly expect: string;
}

/** xargs-style words: whitespace separated, double quotes group. */
function words(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

function block(text: string, name: string): string {
  const m = new RegExp(`^@${name}\\n([\\s\\S]*?)(?=^@|(?![\\s\\S]))`, 'm').exec(text);
  return m ? m[1]! : '';
}

/** `badInput`: refused because an argument is not a valid dependency (not for want of a solution). */
type Outcome = {refused: true; why: string; badInput?: boolean} | {refused: false; changes: string[]} | {notRun: string};

/** What apk printed, as an outcome: its change lines, or a refusal. */
function expected(v: Vector): Outcome {
  const lines = v.expect.split('\n').filter((l) => l.trim() !== '');
  if (lines.some((l) => l.startsWith('ERROR'))) return {refused: true, why: lines.join(' '), badInput: /is not a valid .* dependency/.test(v.expect)};
  return {refused: false, changes: lines.filter((l) => /^\(\d+\/\d+\) /.test(l)).map((l) => l.replace(/^\(\d+\/\d+\) /, ''))};
}

/** Runs a vector's command through psy's resolver and gives apk's change lines. */
function viaPsy(dir: string, v: Vector): Outcome {
  const repos: ResolverRepository[] = [];
  const cachedRepos = new Set<string>();
  let installed: IndexRecord[] = [];
  let world: string[] = [];
  const flags = new Set<string>();
  const rest: string[] = [];
  const a = [...v.args];
  while (a.length) {
    const w = a.shift()!;
    if (w === '--test-repo') {
      const raw = a.shift()!;
      // `!file`: apk's cache of installed packages, available without network
      const cached = raw.startsWith('!');
      const spec = raw.replace(/^!/, '');
      const colon = spec.indexOf(':');
      const tag = colon < 0 ? undefined : spec.slice(0, colon);
      const file = colon < 0 ? spec : spec.slice(colon + 1);
      repos.push({name: file, tag, records: parseIndexText(readFileSync(join(dir, file), 'utf8'), file)});
      if (cached) cachedRepos.add(file);
    } else if (w === '--test-instdb') {
      const file = a.shift()!;
      installed = parseIndexText(readFileSync(join(dir, file), 'utf8'), file);
    } else if (w === '--test-world') {
      world = words(a.shift()!);
    } else if (w.startsWith('-') && rest.length === 0) {
      flags.add(w);
    } else {
      rest.push(w);
    }
  }
  const [command, ...cmdArgs] = rest;
  const args: string[] = [];
  for (let i = 0; i < cmdArgs.length; i++) {
    const w = cmdArgs[i]!;
    if (w === '-t' || w === '--virtual') return {notRun: 'psy has no virtual world packages (apk add -t)'};
    else if (w.startsWith('-')) flags.add(w === '-a' ? '--available' : w === '-u' ? '--upgrade' : w);
    else args.push(w);
  }
  const nameOf = (d: string) => parseDependency(d, 'vector').name;
  let newWorld = [...world];
  let preferInstalled = true;
  switch (command) {
    case 'add':
      for (const d of args) {
        try {
          parseWorldDependency(d, 'world');
        } catch (err) {
          return {refused: true, why: (err as Error).message, badInput: true};
        }
        newWorld = [...newWorld.filter((w) => nameOf(w) !== nameOf(d)), d];
      }
      if (flags.has('--upgrade') || flags.has('--latest')) preferInstalled = false;
      break;
    case 'del':
      newWorld = newWorld.filter((w) => !args.some((d) => nameOf(d) === nameOf(w)));
      break;
    case 'upgrade':
      preferInstalled = false;
      break;
    default:
      return {notRun: `psy has no equivalent of apk ${command}`};
  }
  if (flags.has('--force')) return {notRun: 'psy never installs a partial world (apk --force)'};
  if (flags.has('--latest')) return {notRun: "psy has no 'latest or fail' mode (apk --latest)"};
  // without network only what is installed or cached can be installed
  const available = flags.has('--no-network') ? repos.filter((r) => cachedRepos.has(r.name)) : repos;
  // installed packages stay candidates when no repository has them any more
  const known = new Set(available.flatMap((r) => r.records.map((x) => x.checksum)));
  const leftovers = installed.filter((r) => !known.has(r.checksum));
  const all: ResolverRepository[] = [...available, ...(leftovers.length ? [{name: 'installed', records: leftovers}] : [])];
  // upgrade keeps an installed package unless a newer version of it is available
  const newest = new Map<string, string>();
  for (const r of all.flatMap((x) => x.records)) {
    const v = newest.get(r.name);
    if (v === undefined || compareVersions(r.version, v) > 0) newest.set(r.name, r.version);
  }
  const keep = installed.filter((r) => preferInstalled || compareVersions(newest.get(r.name)!, r.version) <= 0 || flags.has('--available'));
  let order: ReturnType<typeof resolve>;
  try {
    order = resolve({
      world: newWorld,
      arch: 'x86_64',
      repositories: all,
      preferred: new Set(keep.filter(() => !flags.has('--available')).map((r) => r.checksum)),
    });
  } catch (err) {
    return {refused: true, why: (err as Error).message};
  }
  const tagOf = (repo: string) => all.find((r) => r.name === repo)?.tag;
  const label = (name: string, repo: string) => (tagOf(repo) ? `${name}@${tagOf(repo)}` : name);
  const before = new Map(installed.map((r) => [r.name, r]));
  const after = new Set(order.map((p) => p.record.name));
  const changes: string[] = [];
  // removals first, the dependents before what they need
  const removed = installed.filter((r) => !after.has(r.name)).reverse();
  for (const r of removed) changes.push(`Purging ${r.name} (${r.version})`);
  for (const p of order) {
    const old = before.get(p.record.name);
    const n = label(p.record.name, p.repository);
    if (!old) changes.push(`Installing ${n} (${p.record.version})`);
    else if (old.checksum !== p.record.checksum) {
      const c = compareVersions(p.record.version, old.version);
      const op = c > 0 ? 'Upgrading' : c < 0 ? 'Downgrading' : 'Replacing';
      changes.push(`${op} ${n} (${old.version} -> ${p.record.version})`);
    }
  }
  return {refused: false, changes};
}

/**
 * Fresh installs compare in order (psy's install order is apk's). With an installed
 * database the changes compare as a set: their order is apk's transaction walk, and psy
 * never changes a root in place.
 */
function matches(want: Outcome, got: Outcome, ordered: boolean): boolean {
  if ('notRun' in want || 'notRun' in got) return false;
  if (want.refused || got.refused) return want.refused === got.refused && (!want.refused || !got.refused || !!want.badInput === !!got.badInput);
  const a = ordered ? want.changes : [...want.changes].sort();
  const b = ordered ? got.changes : [...got.changes].sort();
  return JSON.stringify(a) === JSON.stringify(b);
}

describe.skipIf(!haveApkToolsSource())(`apk-tools ${APK_TOOLS_VERSION} solver vectors through psy's resolver`, () => {
  let work: string;
  let dir: string;
  let vectors: Vector[];
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'psy-apk-vectors-'));
    execFileSync('tar', ['-xzf', apkToolsTarball, '-C', work, `apk-tools-${APK_TOOLS_VERSION}/test`]);
    dir = join(work, `apk-tools-${APK_TOOLS_VERSION}`, 'test');
    vectors = readdirSync(dir)
      .filter((f) => f.endsWith('.test'))
      .sort()
      .map((f) => {
        const text = readFileSync(join(dir, f), 'utf8');
        return {name: f.replace(/\.test$/, ''), args: words(block(text, 'ARGS')), expect: block(text, 'EXPECT')};
      });
  });
  afterAll(() => rmSync(work, {recursive: true, force: true}));

  it('matches every vector outside the known differences, and none inside', () => {
    expect(vectors.length).toBe(93);
    const unexpected: string[] = [];
    let matched = 0;
    for (const v of vectors) {
      let got: Outcome;
      try {
        got = viaPsy(dir, v);
      } catch (err) {
        got = {refused: true, why: (err as Error).message};
      }
      const want = expected(v);
      const ok = matches(want, got, !v.args.includes('--test-instdb'));
      if (ok) matched++;
      const known = v.name in KNOWN_DIFFERENCES;
      if (ok === known) {
        unexpected.push(`${v.name}: ${ok ? 'now matches: remove it from KNOWN_DIFFERENCES' : `apk ${JSON.stringify(want)} psy ${JSON.stringify(got)}`}`);
      }
    }
    console.log(`apk solver vectors matched by psy's resolver: ${matched} of ${vectors.length}`);
    expect(unexpected).toEqual([]);
    expect(matched).toBe(vectors.length - Object.keys(KNOWN_DIFFERENCES).length);
  });
});

describe.skipIf(!haveAlpineTestData() || !haveApkTools())('psy resolves the real v3.16 index as apk add --simulate does', () => {
  it('chooses the same packages for real worlds, and refuses the same ones', () => {
    const work = mkdtempSync(join(tmpdir(), 'psy-apk-sim-'));
    try {
      const sim = join(work, 'root');
      mkdirSync(join(sim, 'etc/apk/keys'), {recursive: true});
      for (const k of readdirSync(join(alpineTestData, 'keys'))) copyFileSync(join(alpineTestData, 'keys', k), join(sim, 'etc/apk/keys', k));
      apkTools().run(['--root', sim, 'add', '--initdb', '--no-cache', '--arch', 'x86_64']);
      const repo = join(alpineTestData, 'v3.16/main');
      const index = readApkIndex(readFileSync(join(repo, 'x86_64/APKINDEX.tar.gz')), 'v3.16', {keyring: loadKeyring(join(alpineTestData, 'keys'))});
      const worlds = [
        ['alpine-base', 'openssh'],
        ['strace'],
        ['busybox', 'curl'],
        ['python3'],
        ['vim'],
        ['alpine-base', 'vim', 'gvim'],
        ['busybox', 'vim', 'gvim'],
        ['linux-lts'],
        ['busybox', 'curl', 'git', 'openssh', 'e2fsprogs', 'util-linux', 'grub-efi', 'linux-lts', 'mkinitfs'],
        ['curl'], // refused by both: /bin/sh is virtual and nothing provides it with a priority
        ['openssh-client-default', 'openssh-client-krb5'], // refused by both: conflict
      ];
      let sameOrder = 0;
      for (const world of worlds) {
        const r = apkTools().tryRun(['--root', sim, 'add', '--simulate', '--no-cache', '--repository', repo, ...world]);
        const theirs = r.status === 0 ? [...r.stdout.matchAll(/Installing (\S+) \((\S+)\)/g)].map((m) => `${m[1]}-${m[2]}`) : ['refused'];
        let ours: string[];
        try {
          ours = resolve({world, arch: 'x86_64', repositories: [{name: repo, records: index.records}]}).map((p) => `${p.record.name}-${p.record.version}`);
        } catch {
          ours = ['refused'];
        }
        expect([...ours].sort(), world.join(' ')).toEqual([...theirs].sort());
        if (JSON.stringify(ours) === JSON.stringify(theirs)) sameOrder++;
      }
      // the install order is apk's too, except among install_if packages of a large world
      expect(sameOrder).toBeGreaterThanOrEqual(worlds.length - 1);
    } finally {
      rmSync(work, {recursive: true, force: true});
    }
  });
});
