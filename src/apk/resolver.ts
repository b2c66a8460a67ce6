import {PsyError} from '../errors.js';
import {formatDependency, parseDependencies, parseDependency, parseProvide, versionMatches, type Dependency} from './dependency.js';
import type {IndexRecord} from './package-meta.js';
import {compareVersions} from './version.js';

/** One repository's packages as the resolver sees them. */
export interface ResolverRepository {
  /** The repository as configured (URL or folder), recorded in the lock. */
  readonly name: string;
  /**
   * `@tag` of a tagged repository: its packages are used only for world entries pinned
   * to it (`name@tag`) and, as apk does, for the dependencies of packages chosen so.
   */
  readonly tag?: string | undefined;
  readonly records: readonly IndexRecord[];
}

export interface ResolvedPackage {
  readonly record: IndexRecord;
  readonly repository: string;
  /** Who pulled it in: 'world' or `name-version`. */
  readonly requiredBy: readonly string[];
}

export interface ResolveOptions {
  readonly world: readonly string[];
  readonly repositories: readonly ResolverRepository[];
  /** Only packages of this arch or `noarch`. */
  readonly arch: string;
  /** Prefer these identities (Q1) when they satisfy a dependency: keeps a lock stable. */
  readonly preferred?: ReadonlySet<string>;
}

interface Candidate {
  readonly record: IndexRecord;
  readonly repo: number;
  /** Version the name is provided at; undefined for a virtual (unversioned) provide. */
  readonly providedVersion: string | undefined;
}

/**
 * Resolves a world against repositories into an install order (dependencies first).
 * apk's preferences: a locked identity, then the highest version of the requested
 * name, then the highest provider_priority, then the earlier repository. Virtual names
 * (unversioned provides) are chosen by provider_priority. `!name` conflicts exclude
 * candidates; install_if packages join when all their conditions are installed. Greedy
 * like apko's resolver (no backtracking): an impossible world is an error that names
 * the missing name and who asked for it.
 */
export function resolve(opts: ResolveOptions): ResolvedPackage[] {
  const providers = new Map<string, Candidate[]>();
  const add = (name: string, c: Candidate) => {
    let list = providers.get(name);
    if (!list) providers.set(name, (list = []));
    list.push(c);
  };
  const installIfs: Candidate[] = [];
  opts.repositories.forEach((repo, ri) => {
    for (const r of repo.records) {
      if (r.arch !== opts.arch && r.arch !== 'noarch') continue;
      add(r.name, {record: r, repo: ri, providedVersion: r.version});
      for (const prov of names(r).slice(1)) add(prov.name, {record: r, repo: ri, providedVersion: prov.version});
      if (r.installIf.length) installIfs.push({record: r, repo: ri, providedVersion: r.version});
    }
  });

  // Repository pins as apk has them: a world entry `name@tag` may take `name` from the
  // untagged repositories or those tagged @tag, preferring the tagged ones; the
  // dependencies of a package inherit what it was allowed (but prefer untagged ones).
  type Pins = ReadonlySet<string | undefined>;
  const UNTAGGED: Pins = new Set([undefined]);
  const worldPins = new Map<string, string>();
  for (const w of opts.world) {
    const d = parseDependency(w, 'world');
    if (!d.conflict && d.tag) worldPins.set(d.name, d.tag);
  }
  const selected = new Map<string, {c: Candidate; requiredBy: string[]; pins: Pins}>(); // by package name
  const provided = new Map<string, Candidate[]>(); // name → selected providers
  const conflicts: Array<{dep: Dependency; by: string; byName: string}> = [];
  const label = (r: IndexRecord) => `${r.name}-${r.version}`;

  const conflictsWith = (c: Candidate): string | undefined => {
    for (const {dep, by, byName} of conflicts) {
      if (c.record.name === byName) continue;
      if (names(c.record).some((n) => n.name === dep.name && versionMatches(dep, n.version ?? c.record.version, c.record.checksum))) {
        return by;
      }
    }
    return undefined;
  };

  const satisfiedBySelected = (dep: Dependency): Candidate | undefined =>
    (provided.get(dep.name) ?? []).find((c) => matches(dep, c));

  const pinsFor = (dep: Dependency, inherited: Pins): {allowed: Pins; preferred: Pins} => {
    const tag = dep.tag ?? worldPins.get(dep.name);
    if (tag === undefined) return {allowed: inherited, preferred: UNTAGGED};
    return {allowed: new Set([...inherited, tag]), preferred: new Set([tag])};
  };
  const tagOf = (c: Candidate) => opts.repositories[c.repo]!.tag;

  const choose = (dep: Dependency, requester: string, inherited: Pins): {pick: Candidate; pins: Pins} | undefined => {
    const {allowed, preferred} = pinsFor(dep, inherited);
    const all = (providers.get(dep.name) ?? []).filter((c) => allowed.has(tagOf(c)));
    if (all.length === 0) {
      throw new PsyError(
        'apk-unsatisfiable',
        `cannot resolve '${formatDependency(dep)}' required by ${requester}: no package in the repositories provides '${dep.name}'${dep.tag ? ` in repositories tagged @${dep.tag}` : ''}`,
      );
    }
    const fits = all.filter((c) => matches(dep, c));
    if (fits.length === 0) {
      const have = [...new Set(all.map((c) => c.providedVersion ?? `(virtual, ${c.record.name})`))].join(', ');
      throw new PsyError(
        'apk-unsatisfiable',
        `cannot resolve '${formatDependency(dep)}' required by ${requester}: available versions of '${dep.name}': ${have}`,
      );
    }
    const usable = fits.filter((c) => {
      const same = selected.get(c.record.name);
      return (!same || same.c.record.checksum === c.record.checksum) && !conflictsWith(c);
    });
    if (usable.length === 0) {
      const c = fits[0]!;
      const same = selected.get(c.record.name);
      const why = same
        ? `${label(same.c.record)} is already selected (required by ${same.requiredBy.join(', ')})`
        : `it conflicts with ${conflictsWith(c)}`;
      throw new PsyError('apk-unsatisfiable', `cannot resolve '${formatDependency(dep)}' required by ${requester}: ${why}`);
    }
    const virtual = usable.every((c) => c.providedVersion === undefined);
    // apk never picks a provider of a virtual name by itself unless it has a
    // provider_priority; the name may still be satisfied by a package selected otherwise.
    if (virtual && usable.every((c) => c.record.providerPriority === undefined)) return undefined;
    const pick = [...usable].sort(
      (a, b) => Number(preferred.has(tagOf(b))) - Number(preferred.has(tagOf(a))) || prefer(a, b, virtual, dep.name, opts.preferred),
    )[0]!;
    return {pick, pins: allowed};
  };
  const pending: Array<{dep: Dependency; requester: string}> = [];

  const install = (c: Candidate, requester: string, pins: Pins) => {
    const name = c.record.name;
    const existing = selected.get(name);
    if (existing) {
      if (!existing.requiredBy.includes(requester)) existing.requiredBy.push(requester);
      return;
    }
    const me = label(c.record);
    const clash = conflictsWith(c);
    if (clash) throw new PsyError('apk-unsatisfiable', `${me} (required by ${requester}) conflicts with ${clash}`);
    // A name (own or versioned provide) has one owner: two packages cannot both be it.
    for (const n of names(c.record)) {
      if (n.version === undefined) continue;
      const other = (provided.get(n.name) ?? []).find((o) => o.providedVersion !== undefined && o.record.name !== name);
      if (other) {
        throw new PsyError(
          'apk-unsatisfiable',
          `${me} (required by ${requester}) and ${label(other.record)} (required by ${selected.get(other.record.name)!.requiredBy.join(', ')}) both provide '${n.name}'`,
        );
      }
    }
    selected.set(name, {c, requiredBy: [requester], pins});
    for (const n of names(c.record)) {
      let list = provided.get(n.name);
      if (!list) provided.set(n.name, (list = []));
      // each name at the version this package provides it (not the one it was chosen by)
      list.push({record: c.record, repo: c.repo, providedVersion: n.version});
    }
    const deps = depsOf(c.record);
    for (const d of deps.filter((x) => x.conflict)) {
      for (const other of provided.get(d.name) ?? []) {
        if (other.record.name !== name && matches({...d, conflict: false}, other)) {
          throw new PsyError('apk-unsatisfiable', `${me} (required by ${requester}) conflicts with installed ${label(other.record)} ('!${d.name}')`);
        }
      }
      conflicts.push({dep: {...d, conflict: false}, by: me, byName: name});
    }
    for (const d of deps) {
      if (d.conflict) continue;
      if (names(c.record).some((n) => n.name === d.name)) continue; // self-provided
      const have = satisfiedBySelected(d);
      if (have) {
        const s = selected.get(have.record.name)!;
        if (!s.requiredBy.includes(me)) s.requiredBy.push(me);
        continue;
      }
      const chosen = choose(d, me, pins);
      if (chosen) install(chosen.pick, me, chosen.pins);
      else pending.push({dep: d, requester: me});
    }
  };

  // A world entry that another world entry's package provides is satisfied by that
  // package (apk installs gvim alone for `vim gvim`: gvim provides vim).
  const worldDeps = opts.world.map((w) => parseDependency(w, 'world'));
  const byOtherWorldEntry = (dep: Dependency): Candidate | undefined => {
    for (const other of worldDeps) {
      if (other === dep || other.conflict || other.name === dep.name) continue;
      const c = (providers.get(dep.name) ?? []).find((x) => x.record.name === other.name && matches(dep, x));
      if (c) return c;
    }
    return undefined;
  };
  for (const dep of worldDeps) {
    if (dep.conflict) {
      conflicts.push({dep: {...dep, conflict: false}, by: 'world', byName: ''});
      continue;
    }
    const have = satisfiedBySelected(dep);
    if (have) {
      selected.get(have.record.name)!.requiredBy.push('world');
      continue;
    }
    const other = byOtherWorldEntry(dep);
    const chosen = other ? {pick: other, pins: UNTAGGED} : choose(dep, 'world', UNTAGGED);
    if (chosen) install(chosen.pick, 'world', chosen.pins);
    else pending.push({dep, requester: 'world'});
  }

  // install_if: add packages whose every condition is installed, until nothing changes.
  for (let changed = true; changed; ) {
    changed = false;
    for (const c of installIfs) {
      if (selected.has(c.record.name)) continue;
      const conds = installIfOf(c.record);
      const triggers = conds.map((d) => satisfiedBySelected(d));
      if (!triggers.every((t) => t !== undefined)) continue;
      // from a tagged repository only when a package that triggers it was allowed that tag
      const pins: Pins = new Set([undefined, ...triggers.flatMap((t) => [...selected.get(t!.record.name)!.pins])]);
      const best = (providers.get(c.record.name) ?? []).filter(
        (x) => x.record.installIf.length && x.providedVersion === x.record.version && pins.has(tagOf(x)),
      );
      const pick = [...best].sort((a, b) => prefer(a, b, false, c.record.name, opts.preferred))[0];
      if (pick?.record.checksum !== c.record.checksum) continue;
      if (conflictsWith(c)) continue;
      install(c, `install_if ${c.record.installIf.join(' ')}`, pins);
      changed = true;
    }
  }

  // virtual names no package was chosen for
  for (const {dep, requester} of pending) {
    const have = satisfiedBySelected(dep);
    if (have) {
      const s = selected.get(have.record.name)!;
      if (!s.requiredBy.includes(requester)) s.requiredBy.push(requester);
      continue;
    }
    const by = [...new Set((providers.get(dep.name) ?? []).map((c) => c.record.name))].sort();
    throw new PsyError(
      'apk-unsatisfiable',
      `'${dep.name}' (required by ${requester}) is a virtual package provided by ${by.join(', ')}: add one of them to the world`,
    );
  }

  // Install order: dependencies first, depth first in the order they are listed (as apk).
  const order: Candidate[] = [];
  const placed = new Set<string>();
  const place = (c: Candidate) => {
    const name = c.record.name;
    if (placed.has(name)) return;
    placed.add(name);
    for (const d of [...depsOf(c.record), ...installIfOf(c.record)]) {
      if (d.conflict) continue;
      const p = satisfiedBySelected(d);
      if (p && p.record.name !== name) place(selected.get(p.record.name)!.c);
    }
    order.push(c);
  };
  for (const {c} of selected.values()) place(c);

  return order.map((c) => ({
    record: c.record,
    repository: opts.repositories[c.repo]!.name,
    requiredBy: selected.get(c.record.name)!.requiredBy,
  }));
}

// Parsed forms per record, computed once: resolving a world touches the same records often.
const namesCache = new WeakMap<IndexRecord, Array<{name: string; version: string | undefined}>>();
const depsCache = new WeakMap<IndexRecord, Dependency[]>();
const installIfCache = new WeakMap<IndexRecord, Dependency[]>();

function names(r: IndexRecord): Array<{name: string; version: string | undefined}> {
  let n = namesCache.get(r);
  if (!n) namesCache.set(r, (n = [{name: r.name, version: r.version}, ...r.provides.map(parseProvide)]));
  return n;
}

function depsOf(r: IndexRecord): Dependency[] {
  let d = depsCache.get(r);
  if (!d) depsCache.set(r, (d = parseDependencies(r.depends, `${r.name}-${r.version}`)));
  return d;
}

function installIfOf(r: IndexRecord): Dependency[] {
  let d = installIfCache.get(r);
  if (!d) installIfCache.set(r, (d = parseDependencies(r.installIf, `${r.name}-${r.version}`)));
  return d;
}

function matches(dep: Dependency, c: Candidate): boolean {
  if (c.providedVersion === undefined) return dep.op === 'any';
  return versionMatches(dep, c.providedVersion, c.record.checksum);
}

function prefer(a: Candidate, b: Candidate, virtual: boolean, name: string, preferred?: ReadonlySet<string>): number {
  if (preferred) {
    const pa = preferred.has(a.record.checksum);
    const pb = preferred.has(b.record.checksum);
    if (pa !== pb) return pa ? -1 : 1;
  }
  if (virtual) {
    const d = (b.record.providerPriority ?? 0) - (a.record.providerPriority ?? 0);
    if (d !== 0) return d;
  }
  if (a.providedVersion !== undefined && b.providedVersion !== undefined) {
    const v = compareVersions(b.providedVersion, a.providedVersion);
    if (v !== 0) return v;
  }
  // the package that is the name itself before others providing it
  if ((a.record.name === name) !== (b.record.name === name)) return a.record.name === name ? -1 : 1;
  if (a.record.name === b.record.name) {
    const v = compareVersions(b.record.version, a.record.version);
    if (v !== 0) return v;
  }
  const p = (b.record.providerPriority ?? 0) - (a.record.providerPriority ?? 0);
  if (p !== 0) return p;
  if (a.repo !== b.repo) return a.repo - b.repo;
  return a.record.name < b.record.name ? -1 : a.record.name > b.record.name ? 1 : 0;
}

/**
 * Checks that a package set is complete for a world: every world entry and every
 * dependency of every package is provided inside the set, and no conflict is violated.
 * Returns the problems found (empty when consistent). Used by `psy lock --check`.
 */
export function checkPackageSet(world: readonly string[], records: readonly IndexRecord[]): string[] {
  const problems: string[] = [];
  // every name in the set → the packages providing it (and at which version)
  const byName = new Map<string, Array<{record: IndexRecord; candidate: Candidate}>>();
  for (const r of records) {
    for (const n of names(r)) {
      let list = byName.get(n.name);
      if (!list) byName.set(n.name, (list = []));
      list.push({record: r, candidate: {record: r, repo: 0, providedVersion: n.version}});
    }
  }
  const check = (text: string, who: string, self: string | undefined) => {
    const dep = parseDependency(text, who);
    const found = (byName.get(dep.name) ?? []).filter(
      (p) => (!dep.conflict || p.record.name !== self) && matches({...dep, conflict: false}, p.candidate),
    );
    if (dep.conflict && found.length) {
      problems.push(`${who} conflicts with ${found[0]!.record.name}-${found[0]!.record.version} ('${text}')`);
    }
    if (!dep.conflict && !found.length) problems.push(`'${text}' required by ${who} is not in the set`);
  };
  for (const w of world) check(w, 'world', undefined);
  for (const r of records) for (const d of r.depends) check(d, `${r.name}-${r.version}`, r.name);
  return problems;
}
