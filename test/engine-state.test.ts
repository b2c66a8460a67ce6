import {spawn} from 'node:child_process';
import {appendFileSync, readFileSync, statSync, truncateSync, writeFileSync} from 'node:fs';
import {afterEach, beforeEach, describe, expect, it} from 'vitest';
import {initHash} from '../src/engine/hash.js';
import {StateLog} from '../src/engine/state-log.js';
import {Rig, startedSteps} from './helpers/engine-rig.js';

let rig: Rig;
beforeEach(async () => {
  rig = new Rig();
  await initHash();
});
afterEach(() => rig.cleanup());

function threeTargets(): void {
  rig.write({
    'src/a.txt': 'a\n',
    'src/b.txt': 'b\n',
    'src/c.txt': 'c\n',
    'build.config.ts': `export default {targets: ['a', 'b', 'c'].map((n) => ({
  name: n, inputs: {s: 'src/' + n + '.txt'}, outputs: {o: n + '.out'}, command: 'cp $in $out',
}))};
`,
  });
}

describe('state log', () => {
  it('records survive a reopen and replay to the same state', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    log.putFile({path: 'src/x', size: 3, mtimeMs: 1.5, ctimeMs: 2.5, ino: 7, recordedAt: 10_000, hash: '00ff00ff00ff00ff'});
    log.putTarget({name: 't', key: 'k1', action: 'a', params: '', tools: 'x=1', inputs: ['h1', 'h2'], outputs: [{path: 'o', hash: 'h3'}], start: 1, end: 2});
    log.putTarget({name: 't', key: 'k2', action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 3, end: 4});
    log.close();
    const again = StateLog.open(dir, {readOnly: true});
    expect(again.files.get('src/x')).toEqual({path: 'src/x', size: 3, mtimeMs: 1.5, ctimeMs: 2.5, ino: 7, recordedAt: 10_000, hash: '00ff00ff00ff00ff'});
    expect(again.targets.get('t')?.key).toBe('k2');
    expect(again.totalRecords).toBe(3);
  });

  it('a truncated tail is dropped with a warning and the file is repaired', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    log.putTarget({name: 'one', key: 'k1', action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 1, end: 2});
    log.putTarget({name: 'two', key: 'k2', action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 1, end: 2});
    log.close();
    const full = statSync(`${dir}/log`).size;
    truncateSync(`${dir}/log`, full - 5);
    const warnings: string[] = [];
    const reopened = StateLog.open(dir, {warn: (m) => warnings.push(m)});
    expect(reopened.targets.has('one')).toBe(true);
    expect(reopened.targets.has('two')).toBe(false);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/ignored a damaged tail of \d+ bytes/);
    reopened.putTarget({name: 'three', key: 'k3', action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 1, end: 2});
    reopened.close();
    const third = StateLog.open(dir, {warn: (m) => warnings.push(m)});
    expect([...third.targets.keys()].sort()).toEqual(['one', 'three']);
    expect(warnings).toHaveLength(1);
    third.close();
  });

  it('a corrupted record (bad checksum) ends the replay there', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    log.putTarget({name: 'one', key: 'k1', action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 1, end: 2});
    log.putTarget({name: 'two', key: 'k2', action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 1, end: 2});
    log.close();
    const bytes = readFileSync(`${dir}/log`);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff;
    writeFileSync(`${dir}/log`, bytes);
    const warnings: string[] = [];
    const reopened = StateLog.open(dir, {readOnly: true, warn: (m) => warnings.push(m)});
    expect([...reopened.targets.keys()]).toEqual(['one']);
    expect(warnings[0]).toMatch(/damaged tail/);
  });

  it('compaction rewrites only live records and keeps the state', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    for (let i = 0; i < 2000; i++) {
      log.putTarget({name: `t${i % 10}`, key: `k${i}`, action: 'a', params: '', tools: '', inputs: [], outputs: [], start: i, end: i});
    }
    const before = statSync(`${dir}/log`).size;
    expect(log.compactIfNeeded()).toBe(true);
    log.close();
    expect(statSync(`${dir}/log`).size).toBeLessThan(before / 50);
    const again = StateLog.open(dir, {readOnly: true});
    expect(again.totalRecords).toBe(10);
    expect(again.targets.get('t3')?.key).toBe('k1993');
  });

  it('a log opened vouched for decodes records on demand and answers like a full replay', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    for (let i = 0; i < 300; i++) {
      const n = i % 37;
      log.putFile({
        path: `src/f${i % 53}.txt`,
        size: i,
        mtimeMs: i + 0.5,
        ctimeMs: i + 0.25,
        ino: 1000 + i,
        recordedAt: 5000 + i,
        hash: (i * 7919).toString(16).padStart(16, '0'),
      });
      log.putTarget({
        name: `t${n}`,
        key: `k${i}`,
        action: 'a',
        params: `p${i}`,
        tools: '',
        inputs: [`h${i}`],
        outputs: [{path: `out/t${n}`, hash: `o${i}`}],
        start: i,
        end: i + 1,
      });
      if (i % 11 === 0) log.forgetTarget(`t${(i * 3) % 37}`);
      if (i % 29 === 0) log.putTool({path: `tool${i % 3}\0--version\0/usr/bin/tool`, size: i, mtimeMs: i, ino: i, version: `v${i}`});
    }
    log.close();
    const st = statSync(`${dir}/log`);
    const lazy = StateLog.open(dir, {readOnly: true, vouched: [st.size, st.mtimeMs, st.ino]});
    const full = StateLog.open(dir, {readOnly: true});
    expect(lazy.lazy).toBe(true);
    expect(full.lazy).toBe(false);
    for (let n = 0; n < 40; n++) expect(lazy.targets.get(`t${n}`)).toEqual(full.targets.get(`t${n}`));
    for (let f = 0; f < 55; f++) expect(lazy.files.get(`src/f${f}.txt`)).toEqual(full.files.get(`src/f${f}.txt`));
    for (let k = 0; k < 4; k++) expect(lazy.tools.get(`tool${k}\0--version\0/usr/bin/tool`)).toEqual(full.tools.get(`tool${k}\0--version\0/usr/bin/tool`));
    expect(lazy.totalRecords).toBe(full.totalRecords);
    // Iterating replays the whole log.
    expect([...lazy.targets.keys()].sort()).toEqual([...full.targets.keys()].sort());
    expect(lazy.liveRecords).toBe(full.liveRecords);
  });

  it('a vouched-for log that moved on since is replayed whole', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    log.putTarget({name: 'one', key: 'k1', action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 1, end: 2});
    log.close();
    const st = statSync(`${dir}/log`);
    expect(StateLog.open(dir, {readOnly: true, vouched: [st.size, st.mtimeMs, st.ino]}).lazy).toBe(true);
    expect(StateLog.open(dir, {readOnly: true, vouched: [st.size + 1, st.mtimeMs, st.ino]}).lazy).toBe(false);
    expect(StateLog.open(dir, {readOnly: true, vouched: [st.size, st.mtimeMs - 1000, st.ino]}).lazy).toBe(false);
    // A torn tail: the framing does not end at the file's end.
    appendFileSync(`${dir}/log`, Buffer.from([0x20, 0, 0, 0, 1, 2, 3]));
    const torn = statSync(`${dir}/log`);
    const warnings: string[] = [];
    const reopened = StateLog.open(dir, {vouched: [torn.size, torn.mtimeMs, torn.ino], warn: (m) => warnings.push(m)});
    expect(reopened.lazy).toBe(false);
    expect(warnings[0]).toMatch(/damaged tail of 7 bytes/);
    expect(reopened.targets.get('one')?.key).toBe('k1');
    reopened.close();
    expect(statSync(`${dir}/log`).size).toBe(st.size);
  });

  it('a record that fails its checksum in a vouched-for log: a warning, then the full replay answers', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    for (let i = 0; i < 10; i++) log.putTarget({name: `t${i}`, key: `k${i}`, action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 1, end: 2});
    log.close();
    // Flip a byte of t5's key hash (not its name, so the index still finds it).
    const bytes = readFileSync(`${dir}/log`);
    const at = bytes.indexOf(Buffer.from('k5'));
    expect(at).toBeGreaterThan(0);
    bytes[at + 1] = bytes[at + 1]! ^ 0x01;
    writeFileSync(`${dir}/log`, bytes);
    const st = statSync(`${dir}/log`);
    const warnings: string[] = [];
    const lazy = StateLog.open(dir, {vouched: [st.size, st.mtimeMs, st.ino], warn: (m) => warnings.push(m)});
    expect(lazy.lazy).toBe(true);
    expect(lazy.targets.get('t4')?.key).toBe('k4');
    expect(lazy.targets.get('t5')).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/did not check out; replaying the whole log/);
    // As the full replay: everything after the damaged record is gone.
    expect(lazy.targets.get('t7')).toBeUndefined();
    expect([...lazy.targets.keys()].sort()).toEqual(['t0', 't1', 't2', 't3', 't4']);
    lazy.close();
  });

  it('a lazily opened log appends, and compacts when it has grown 3x past its live records', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    for (let i = 0; i < 2000; i++) {
      log.putTarget({name: `t${i % 10}`, key: `k${i}`, action: 'a', params: '', tools: '', inputs: [], outputs: [], start: i, end: i});
    }
    log.close();
    const st = statSync(`${dir}/log`);
    const lazy = StateLog.open(dir, {vouched: [st.size, st.mtimeMs, st.ino]});
    expect(lazy.lazy).toBe(true);
    lazy.putTarget({name: 't3', key: 'k-new', action: 'a', params: '', tools: '', inputs: [], outputs: [], start: 1, end: 1});
    expect(lazy.targets.get('t3')?.key).toBe('k-new');
    expect(lazy.targets.get('t4')?.key).toBe('k1994');
    expect(lazy.compactIfNeeded()).toBe(true);
    lazy.close();
    const again = StateLog.open(dir, {readOnly: true});
    expect(again.totalRecords).toBe(10);
    expect(again.targets.get('t3')?.key).toBe('k-new');
    expect(again.targets.get('t4')?.key).toBe('k1994');

    // Few records per key: a lazily opened log decides without replaying.
    const small = rig.path('small');
    const s = StateLog.open(small);
    for (let i = 0; i < 1500; i++) s.putTarget({name: `u${i}`, key: `k${i}`, action: 'a', params: '', tools: '', inputs: [], outputs: [], start: i, end: i});
    s.close();
    const sst = statSync(`${small}/log`);
    const sl = StateLog.open(small, {vouched: [sst.size, sst.mtimeMs, sst.ino]});
    expect(sl.compactIfNeeded()).toBe(false);
    sl.close();
  });

  it('a saved index answers like a full replay, with records appended after it', () => {
    const dir = rig.path('state');
    const put = (log: StateLog, i: number) => {
      log.putFile({path: `src/f${i % 300}.txt`, size: i, mtimeMs: i, ctimeMs: i, ino: i, recordedAt: i, hash: (i * 31).toString(16).padStart(16, '0')});
      log.putTarget({
        name: `t${i % 400}`,
        key: `k${i}`,
        action: 'a',
        params: '',
        tools: '',
        inputs: [`h${i}`],
        outputs: [{path: `out/${i % 400}`, hash: `o${i}`}],
        start: i,
        end: i,
      });
      if (i % 97 === 0) log.forgetTarget(`t${(i * 7) % 400}`);
    };
    const log = StateLog.open(dir);
    for (let i = 0; i < 1500; i++) put(log, i);
    log.close();
    const vouch = () => {
      const st = statSync(`${dir}/log`);
      return [st.size, st.mtimeMs, st.ino] as const;
    };
    const compare = (lazy: StateLog) => {
      const full = StateLog.open(dir, {readOnly: true});
      for (let n = 0; n < 410; n++) expect(lazy.targets.get(`t${n}`)).toEqual(full.targets.get(`t${n}`));
      for (let f = 0; f < 310; f++) expect(lazy.files.get(`src/f${f}.txt`)).toEqual(full.files.get(`src/f${f}.txt`));
    };
    // No index yet: the log is framed, and an index saved after the run.
    const first = StateLog.open(dir, {vouched: vouch()});
    expect(first.indexedFrom).toBe('log');
    compare(first);
    first.saveIndex();
    first.close();
    expect(statSync(`${dir}/log.idx`).size).toBeGreaterThan(0);
    const second = StateLog.open(dir, {vouched: vouch()});
    expect(second.indexedFrom).toBe('saved index');
    compare(second);
    // Records appended after the index (by this log and by a fully replayed one).
    for (let i = 1500; i < 1600; i++) put(second, i);
    second.close();
    const other = StateLog.open(dir);
    for (let i = 1600; i < 1700; i++) put(other, i);
    other.close();
    const third = StateLog.open(dir, {readOnly: true, vouched: vouch()});
    expect(third.indexedFrom).toBe('saved index');
    compare(third);
    third.close();
  });

  it('a damaged index warns and the log is framed instead; an index of another log is not used', () => {
    const dir = rig.path('state');
    const log = StateLog.open(dir);
    for (let i = 0; i < 2500; i++)
      log.putTarget({name: `t${i % 50}`, key: `k${i}`, action: 'a', params: '', tools: '', inputs: [], outputs: [], start: i, end: i});
    log.close();
    const vouch = () => {
      const st = statSync(`${dir}/log`);
      return [st.size, st.mtimeMs, st.ino] as const;
    };
    const a = StateLog.open(dir, {vouched: vouch()});
    a.saveIndex();
    a.close();
    const saved = readFileSync(`${dir}/log.idx`);
    // Cut short: refused when opening.
    writeFileSync(`${dir}/log.idx`, saved.subarray(0, saved.length - 4));
    const warnings: string[] = [];
    const cut = StateLog.open(dir, {readOnly: true, vouched: vouch(), warn: (m) => warnings.push(m)});
    expect(cut.indexedFrom).toBe('log');
    expect(warnings).toEqual([expect.stringMatching(/state log index .*log\.idx is damaged; reading the whole log/)]);
    expect(cut.targets.get('t7')?.key).toBe('k2457');
    cut.close();
    // Chains that lead nowhere sensible: found when looking, and the whole log answers.
    const size = saved.readUInt32LE(48);
    const count = saved.readUInt32LE(44);
    const bent = Buffer.from(saved);
    for (let r = 0; r < count; r++) bent.writeInt32LE(r + 1, 64 + 4 * size + 4 * r);
    writeFileSync(`${dir}/log.idx`, bent);
    const b = StateLog.open(dir, {vouched: vouch(), warn: (m) => warnings.push(m)});
    expect(b.indexedFrom).toBe('saved index');
    expect(b.targets.get('t7')?.key).toBe('k2457');
    expect(warnings[1]).toMatch(/a record did not check out; replaying the whole log/);
    expect(b.targets.get('t8')?.key).toBe('k2458');
    // Compaction writes a new log (a new inode) and drops the index.
    expect(b.compactIfNeeded()).toBe(true);
    b.close();
    expect(() => statSync(`${dir}/log.idx`)).toThrow();
    // The old index put back: it names the old log's inode, so it is passed over silently.
    writeFileSync(`${dir}/log.idx`, saved);
    const c = StateLog.open(dir, {vouched: vouch(), warn: (m) => warnings.push(m)});
    expect(c.indexedFrom).toBe('log');
    expect(warnings).toHaveLength(2);
    expect(c.targets.get('t7')?.key).toBe('k2457');
    c.close();
  });

  it('a build after a damaged log warns and rebuilds only what it must', () => {
    threeTargets();
    rig.psy(['build', '-j1']);
    const logPath = rig.path('cache/state/log');
    appendFileSync(logPath, Buffer.from([0x20, 0, 0, 0, 1, 2, 3]));
    const r = rig.psy(['build']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/psy: warning: state log .* ignored a damaged tail of 7 bytes/);
    expect(startedSteps(r.stdout)).toEqual([]);
  });
});

describe('build lock', () => {
  it('a second build while one runs fails naming the holder pid', async () => {
    rig.write({'build.config.ts': `export default {targets: [{name: 'slow', outputs: {o: 'slow'}, command: 'sleep 3; touch $out'}]};\n`});
    const first = rig.spawnPsy(['build']);
    // Wait until the first build holds the lock.
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      try {
        if (readFileSync(rig.path('cache/state/lock'), 'utf8').trim() === String(first.child.pid)) break;
      } catch {
        // not yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const second = rig.psy(['build']);
    expect(second.code).toBe(1);
    expect(second.stderr.trim()).toBe(
      `psy build: another psy build (pid ${first.child.pid}) is using ${rig.path('cache/state')}; wait for it to finish or stop it`,
    );
    expect((await first.done).code).toBe(0);
  });

  it('a stale lock from a dead process is taken over with a warning', async () => {
    threeTargets();
    const dead = spawn('true');
    await new Promise((r) => dead.on('close', r));
    rig.write({'cache/state/lock': `${dead.pid}\n`});
    const r = rig.psy(['build']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`psy: warning: took over the build lock of pid ${dead.pid}, which no longer runs`);
    expect(startedSteps(r.stdout).sort()).toEqual(['a', 'b', 'c']);
  });
});
