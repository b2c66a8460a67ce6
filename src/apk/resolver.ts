import {PsyError} from '../errors.js';
import {formatDependency, parseDependencies, parseDependency, parseProvide, parseWorldDependency, versionMatches, type Dependency} from './dependency.js';
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
 * Resolves a world against repositories into an install order (apk's changeset order).
 * apk's preferences: a locked identity, then the highest version of the requested
 * name, then the highest provider_priority, then the earlier repository. Virtual names
 * (unversioned provides) are chosen by provider_priority. `!name` conflicts exclude
 * candidates; install_if packages join when all their conditions are installed (and
 * are left out when they cannot be installed). Where a choice leads to a dead end, the
 * next candidate is tried (backtracking, bounded): an impossible world is an error that
 * names the missing name and who asked for it, from the first path tried.
 */
export function resolve(opts: ResolveOptions): ResolvedPackage[] {
  const providers = new Map<string, Candidate[]>();
  const add = (name: string, c: Candidate) => {
    let list = providers.get(name);
    if (!list) providers.set(name, (list = []));
    list.push(c);
  };
  const installIfs: Candidate[] = [];
  // apk knows a package by its identity (the 20 bytes of the Q1 hash): a later record
  // claiming an identity already read for another name or version is that package
  const identities = new Map<string, IndexRecord>();
  opts.repositories.forEach((repo, ri) => {
    for (const r of repo.records) {
      if (r.arch !== opts.arch && r.arch !== 'noarch') continue;
      const id = identityKey(r);
      const first = identities.get(id);
      if (first && (first.name !== r.name || first.version !== r.version)) continue;
      identities.set(id, r);
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
    const d = parseWorldDependency(w, 'world');
    if (!d.conflict && d.tag) worldPins.set(d.name, d.tag);
  }
  const pinsFor = (dep: Dependency, inherited: Pins): {allowed: Pins; preferred: Pins} => {
    const tag = dep.tag ?? worldPins.get(dep.name);
    if (tag === undefined) return {allowed: inherited, preferred: UNTAGGED};
    return {allowed: new Set([...inherited, tag]), preferred: new Set([tag])};
  };
  const tagOf = (c: Candidate) => opts.repositories[c.repo]!.tag;
  const label = (r: IndexRecord) => `${r.name}-${r.version}`;

  interface Selection {
    readonly c: Candidate;
    readonly requiredBy: string[];
    readonly pins: Pins;
    /** Only install_if brought it in (it cannot stand in for a virtual name the world needs). */
    viaInstallIf: boolean;
  }
  interface Task {
    readonly dep: Dependency;
    readonly requester: string;
    readonly pins: Pins;
  }
  interface State {
    readonly selected: Map<string, Selection>; // by package name
    readonly provided: Map<string, Candidate[]>; // name → selected providers
    readonly conflicts: Array<{dep: Dependency; by: string; byName: string}>;
    readonly pending: Array<{dep: Dependency; requester: string}>;
  }
  const clone = (s: State): State => ({
    selected: new Map([...s.selected].map(([k, v]) => [k, {...v, requiredBy: [...v.requiredBy]}])),
    provided: new Map([...s.provided].map(([k, v]) => [k, [...v]])),
    conflicts: [...s.conflicts],
    pending: [...s.pending],
  });

  const conflictsWith = (st: State, c: Candidate): string | undefined => {
    for (const {dep, by, byName} of st.conflicts) {
      if (c.record.name === byName) continue;
      if (names(c.record).some((n) => n.name === dep.name && versionMatches(dep, n.version ?? c.record.version, c.record.checksum))) {
        return by;
      }
    }
    return undefined;
  };
  const satisfiedBySelected = (st: State, dep: Dependency): Candidate | undefined => (st.provided.get(dep.name) ?? []).find((c) => matches(dep, c));
  const requiredBy = (st: State, name: string, who: string) => {
    const s = st.selected.get(name)!;
    if (!s.requiredBy.includes(who)) s.requiredBy.push(who);
  };

  /** The candidates for a dependency, best first; undefined for a virtual name apk leaves to others. */
  const candidates = (st: State, dep: Dependency, requester: string, inherited: Pins): Array<{pick: Candidate; pins: Pins}> | undefined => {
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
      const same = st.selected.get(c.record.name);
      return (!same || same.c.record.checksum === c.record.checksum) && !conflictsWith(st, c) && !providesItself(c.record);
    });
    if (usable.length === 0) {
      const c = fits[0]!;
      const same = st.selected.get(c.record.name);
      const why = same
        ? `${label(same.c.record)} is already selected (required by ${same.requiredBy.join(', ')})`
        : providesItself(c.record)
          ? `${label(c.record)} provides its own name or one name twice (apk refuses it as conflicting with itself)`
          : `it conflicts with ${conflictsWith(st, c)}`;
      throw new PsyError('apk-unsatisfiable', `cannot resolve '${formatDependency(dep)}' required by ${requester}: ${why}`);
    }
    const virtual = usable.every((c) => c.providedVersion === undefined);
    // apk never picks a provider of a virtual name by itself unless it has a
    // provider_priority; the name may still be satisfied by a package selected otherwise.
    if (virtual && usable.every((c) => c.record.providerPriority === undefined)) return undefined;
    return [...usable]
      .sort((a, b) => Number(preferred.has(tagOf(b))) - Number(preferred.has(tagOf(a))) || prefer(a, b, virtual, dep.name, opts.preferred))
      .map((pick) => ({pick, pins: allowed}));
  };

  /** Selects a package; returns the dependencies it adds, in the order listed. */
  const install = (st: State, c: Candidate, requester: string, pins: Pins, viaInstallIf = false): Task[] => {
    const name = c.record.name;
    const existing = st.selected.get(name);
    if (existing) {
      requiredBy(st, name, requester);
      if (!viaInstallIf) existing.viaInstallIf = false;
      return [];
    }
    const me = label(c.record);
    const clash = conflictsWith(st, c);
    if (clash) throw new PsyError('apk-unsatisfiable', `${me} (required by ${requester}) conflicts with ${clash}`);
    // A name (own or versioned provide) has one owner: two packages cannot both be it.
    for (const n of names(c.record)) {
      if (n.version === undefined) continue;
      const other = (st.provided.get(n.name) ?? []).find((o) => o.providedVersion !== undefined && o.record.name !== name);
      if (other) {
        throw new PsyError(
          'apk-unsatisfiable',
          `${me} (required by ${requester}) and ${label(other.record)} (required by ${st.selected.get(other.record.name)!.requiredBy.join(', ')}) both provide '${n.name}'`,
        );
      }
    }
    st.selected.set(name, {c, requiredBy: [requester], pins, viaInstallIf});
    for (const n of names(c.record)) {
      let list = st.provided.get(n.name);
      if (!list) st.provided.set(n.name, (list = []));
      // each name at the version this package provides it (not the one it was chosen by)
      list.push({record: c.record, repo: c.repo, providedVersion: n.version});
    }
    const deps = depsOf(c.record);
    for (const d of deps.filter((x) => x.conflict)) {
      for (const other of st.provided.get(d.name) ?? []) {
        if (other.record.name !== name && matches({...d, conflict: false}, other)) {
          throw new PsyError('apk-unsatisfiable', `${me} (required by ${requester}) conflicts with installed ${label(other.record)} ('!${d.name}')`);
        }
      }
      st.conflicts.push({dep: {...d, conflict: false}, by: me, byName: name});
    }
    return deps.filter((d) => !d.conflict && !names(c.record).some((n) => n.name === d.name)).map((d) => ({dep: d, requester: me, pins}));
  };

  // Depth first, as apk walks dependencies; a choice between candidates is a point to
  // come back to. The budget bounds the search on worlds that have no solution.
  let budget = 2000;
  const solve = (st: State, tasks: Task[]): State => {
    let queue = tasks;
    while (queue.length) {
      const [task, ...rest] = queue;
      queue = rest;
      const {dep, requester} = task!;
      const have = satisfiedBySelected(st, dep);
      if (have) {
        requiredBy(st, have.record.name, requester);
        continue;
      }
      const options = candidates(st, dep, requester, task!.pins);
      if (!options) {
        st.pending.push({dep, requester});
        continue;
      }
      if (options.length === 1 || budget <= 0) {
        queue = [...install(st, options[0]!.pick, requester, options[0]!.pins), ...queue];
        continue;
      }
      let first: unknown;
      for (const o of options) {
        const trial = clone(st);
        try {
          return solve(trial, [...install(trial, o.pick, requester, o.pins), ...queue]);
        } catch (err) {
          if (!(err instanceof PsyError) || err.code !== 'apk-unsatisfiable') throw err;
          first ??= err;
          if (--budget <= 0) break;
        }
      }
      throw first;
    }
    return st;
  };

  // A world entry that another world entry's package provides is satisfied by that
  // package (apk installs gvim alone for `vim gvim`: gvim provides vim).
  const worldDeps = opts.world.map((w) => parseWorldDependency(w, 'world'));
  const byOtherWorldEntry = (dep: Dependency): Candidate | undefined => {
    for (const other of worldDeps) {
      if (other === dep || other.conflict || other.name === dep.name) continue;
      const c = (providers.get(dep.name) ?? []).find((x) => x.record.name === other.name && matches(dep, x));
      if (c) return c;
    }
    return undefined;
  };
  const initial = (): State => ({
    selected: new Map(),
    provided: new Map(),
    conflicts: worldDeps.filter((d) => d.conflict).map((dep) => ({dep: {...dep, conflict: false}, by: 'world', byName: ''})),
    pending: [],
  });
  let state = initial();
  const worldTasks: Task[] = [];
  for (const dep of worldDeps) {
    if (dep.conflict) continue;
    const other = byOtherWorldEntry(dep);
    worldTasks.push(
      other
        ? {dep: {name: other.record.name, op: '><', version: other.record.checksum, conflict: false, tag: undefined}, requester: 'world', pins: UNTAGGED}
        : {dep, requester: 'world', pins: UNTAGGED},
    );
  }
  state = solve(state, worldTasks);

  // install_if: add packages whose every condition is installed, until nothing changes;
  // one that cannot be installed (a dependency missing, a conflict) is left out, as apk does.
  const failedInstallIf = new Set<string>();
  for (let changed = true; changed;) {
    changed = false;
    for (const c of installIfs) {
      if (state.selected.has(c.record.name) || failedInstallIf.has(c.record.checksum)) continue;
      const conds = installIfOf(c.record);
      const triggers = conds.map((d) => satisfiedBySelected(state, d));
      if (!triggers.every((t) => t !== undefined)) continue;
      // from a tagged repository only when a package that triggers it was allowed that tag
      const pins: Pins = new Set([undefined, ...triggers.flatMap((t) => [...state.selected.get(t!.record.name)!.pins])]);
      const best = (providers.get(c.record.name) ?? []).filter(
        (x) => x.record.installIf.length && x.providedVersion === x.record.version && pins.has(tagOf(x)) && !failedInstallIf.has(x.record.checksum),
      );
      const pick = [...best].sort((a, b) => prefer(a, b, false, c.record.name, opts.preferred))[0];
      if (pick?.record.checksum !== c.record.checksum) continue;
      if (conflictsWith(state, c) || providesItself(c.record)) continue;
      const trial = clone(state);
      const why = `install_if ${c.record.installIf.join(' ')}`;
      try {
        state = solve(trial, install(trial, c, why, pins, true));
        changed = true;
        continue;
      } catch (err) {
        if (!(err instanceof PsyError) || err.code !== 'apk-unsatisfiable') throw err;
      }
      // apk weighs install_if packages while choosing: solve again with this one chosen
      // first; keep that only if every name chosen so far is still there
      try {
        const again = solve(initial(), [
          {dep: {name: c.record.name, op: '><', version: c.record.checksum, conflict: false, tag: undefined}, requester: why, pins},
          ...worldTasks,
        ]);
        again.selected.get(c.record.name)!.viaInstallIf = true;
        if ([...state.selected.keys()].every((n) => again.provided.has(n))) {
          state = again;
          changed = true;
          continue;
        }
      } catch (err) {
        if (!(err instanceof PsyError) || err.code !== 'apk-unsatisfiable') throw err;
      }
      // left out, as apk leaves out an install_if package it cannot install
      failedInstallIf.add(c.record.checksum);
      changed = true;
    }
  }

  // virtual names no package was chosen for: a package the world or a dependency chose
  // may stand in, one only install_if brought may not (apk asks to choose one)
  for (const {dep, requester} of state.pending) {
    const have = (state.provided.get(dep.name) ?? []).find((c) => matches(dep, c) && !state.selected.get(c.record.name)!.viaInstallIf);
    if (have) {
      requiredBy(state, have.record.name, requester);
      continue;
    }
    const by = [...new Set((providers.get(dep.name) ?? []).map((c) => c.record.name))].sort();
    throw new PsyError(
      'apk-unsatisfiable',
      `'${dep.name}' (required by ${requester}) is a virtual package provided by ${by.join(', ')}: add one of them to the world`,
    );
  }

  // Install order as apk's changeset: world entries sorted by name; each package after
  // what it depends on (conflicting names included, in the order listed); an install_if
  // package right after the last package that triggers it.
  const {selected, provided} = state;
  const order: Candidate[] = [];
  const placed = new Set<string>();
  const providerOf = (name: string) => (provided.get(name) ?? []).map((p) => selected.get(p.record.name)!.c);
  const triggeredBy = new Map<string, Candidate[]>();
  for (const {c} of selected.values()) {
    for (const d of installIfOf(c.record)) {
      let list = triggeredBy.get(d.name);
      if (!list) triggeredBy.set(d.name, (list = []));
      list.push(c);
    }
  }
  const place = (c: Candidate) => {
    const name = c.record.name;
    if (placed.has(name)) return;
    placed.add(name);
    for (const d of depsOf(c.record)) {
      const p = d.conflict ? providerOf(d.name)[0] : satisfiedBySelected(state, d);
      if (p && p.record.name !== name) place(selected.get(p.record.name)!.c);
    }
    order.push(c);
    for (const n of names(c.record)) {
      for (const t of triggeredBy.get(n.name) ?? []) {
        if (installIfOf(t.record).every((d) => providerOf(d.name).some((p) => placed.has(p.record.name)))) place(t);
      }
    }
  };
  const byDisplayName = (a: string, b: string) => {
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
  };
  for (const dep of [...worldDeps].sort((a, b) => byDisplayName(a.name, b.name))) {
    const p = dep.conflict ? providerOf(dep.name)[0] : satisfiedBySelected(state, dep);
    if (p) place(selected.get(p.record.name)!.c);
  }
  for (const {c} of selected.values()) place(c);

  return order.map((c) => ({
    record: c.record,
    repository: opts.repositories[c.repo]!.name,
    requiredBy: selected.get(c.record.name)!.requiredBy,
  }));
}

/** The bytes a `Q1` identity stands for (base64 padding bits ignored, as apk decodes it). */
function identityKey(r: IndexRecord): string {
  let k = identityCache.get(r);
  if (k === undefined) {
    const c = r.checksum;
    // only the last character before '=' carries padding bits
    k = /^Q1[A-Za-z0-9+/]{27}=$/.test(c) ? c.slice(0, 28) + Buffer.from(c.slice(2), 'base64').at(-1)!.toString(16) : c;
    identityCache.set(r, k);
  }
  return k;
}

/** A package providing its own name, or one name twice: apk sees it conflict with itself. */
function providesItself(r: IndexRecord): boolean {
  const seen = new Set<string>();
  for (const n of names(r)) {
    if (seen.has(n.name)) return true;
    seen.add(n.name);
  }
  return false;
}

// Parsed forms per record, computed once: resolving a world touches the same records often.
const namesCache = new WeakMap<IndexRecord, Array<{name: string; version: string | undefined}>>();
const depsCache = new WeakMap<IndexRecord, Dependency[]>();
const installIfCache = new WeakMap<IndexRecord, Dependency[]>();
const identityCache = new WeakMap<IndexRecord, string>();

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
    const found = (byName.get(dep.name) ?? []).filter((p) => (!dep.conflict || p.record.name !== self) && matches({...dep, conflict: false}, p.candidate));
    if (dep.conflict && found.length) {
      problems.push(`${who} conflicts with ${found[0]!.record.name}-${found[0]!.record.version} ('${text}')`);
    }
    if (!dep.conflict && !found.length) problems.push(`'${text}' required by ${who} is not in the set`);
  };
  for (const w of world) check(w, 'world', undefined);
  for (const r of records) for (const d of r.depends) check(d, `${r.name}-${r.version}`, r.name);
  return problems;
}
