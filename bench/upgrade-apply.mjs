#!/usr/bin/env node
// Benchmark: neuralupgrade applying a ~100 MB ostar to a slot of a disk image file, against
// a raw copy of the same bytes into the same slot plus a sha256 of them, in the same run.
// Goal: apply ≤ 2.5× the raw copy + hash, with nothing written before verification.
// Usage: npm run build && node bench/upgrade-apply.mjs [--mb 100] [--runs 3]
import {createHash, randomBytes} from 'node:crypto';
import {closeSync, fsyncSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {parseArgs} from 'node:util';

const {values} = parseArgs({options: {mb: {type: 'string', default: '100'}, runs: {type: 'string', default: '3'}}});
const MB = Number(values.mb);
const RUNS = Number(values.runs);
const dist = new URL('../dist/', import.meta.url);
const {buildDiskImage, psyopsPartitions} = await import(new URL('disk/index.js', dist).href);
const {writeTar} = await import(new URL('image/tar.js', dist).href);
const {generateKeyPair} = await import(new URL('sign/keys.js', dist).href);
const {signFile} = await import(new URL('sign/signature.js', dist).href);
const {formatTrustedComment} = await import(new URL('sign/trusted-comment.js', dist).href);
const {apply: neuralupgradeApply} = await import(new URL('upgrade/neuralupgrade.js', dist).href);
const {openImage} = await import(new URL('upgrade/place.js', dist).href);

const dir = mkdtempSync(join(tmpdir(), 'bench-upgrade-'));
try {
  const keys = generateKeyPair();
  const version = '20250101-000000';
  const name = `psyopsOS.x86_64.${version}.tar`;
  const tar = join(dir, name);
  // incompressible content, as a real squashfs is
  const squashfs = randomBytes(MB * 1024 * 1024 - 4 * 1024 * 1024);
  await writeTar(
    tar,
    [
      {type: 'data', path: 'initramfs', mode: 0o644, data: randomBytes(3 * 1024 * 1024)},
      {type: 'data', path: 'kernel', mode: 0o644, data: randomBytes(1024 * 1024)},
      {type: 'data', path: 'squashfs', mode: 0o644, data: squashfs},
    ],
    1_700_000_000,
  );
  const size = statSync(tar).size;
  const sig = await signFile(tar, keys.secretKey, {
    trustedComment: formatTrustedComment({type: 'psyopsOS', filename: name, version, architecture: 'x86_64', size}),
  });
  writeFileSync(`${tar}.minisig`, sig);
  const img = join(dir, 'disk.img');
  await buildDiskImage(img, {seed: 'bench', epoch: 1_700_000_000, partitions: psyopsPartitions({espMiB: 40, secretMiB: 4, slotMiB: MB + 64})});
  const place = await openImage(img);
  const slot = place.slots.B;

  function rawCopyAndHash() {
    const h = createHash('sha256');
    const buf = Buffer.alloc(1 << 20);
    const src = openSync(tar, 'r');
    const dst = openSync(img, 'r+');
    let off = 0;
    for (;;) {
      const n = readSync(src, buf, 0, buf.length, off);
      if (n === 0) break;
      writeSync(dst, buf, 0, n, slot.offset + off);
      h.update(buf.subarray(0, n));
      off += n;
    }
    fsyncSync(dst);
    closeSync(src);
    closeSync(dst);
    return h.digest('hex');
  }

  // where an apply's time goes: verification, unpacking, then each numbered write step
  const phases = new Map();
  const cpuPhases = new Map();
  const addPhase = (name, seconds) => phases.set(name, [...(phases.get(name) ?? []), seconds]);
  const cpuNow = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  // neuralupgrade's own apply (what a node runs): the tarball verified and unpacked, every
  // check, then the numbered write steps into slot B of a disk booted from A, tried once
  const ctx = {
    place: {...place, booted: 'A'},
    pubkey: keys.publicKey,
    osTarget: {kind: 'os', arch: 'x86_64'},
    espTarget: {kind: 'esp', arch: 'x86_64'},
    tmpDir: dir,
    allowDowngrade: true,
    sourceDateEpoch: 1_700_000_000,
  };
  async function apply() {
    let t = performance.now();
    let c = cpuNow();
    let current = 'verify+unpack';
    const mark = (next) => {
      const now = performance.now();
      const cnow = cpuNow();
      addPhase(current, (now - t) / 1000);
      cpuPhases.set(current, [...(cpuPhases.get(current) ?? []), cnow - c]);
      current = next;
      t = now;
      c = cnow;
    };
    await neuralupgradeApply(ctx, {
      targets: ['nonbooted'],
      osTar: tar,
      afterVerify: () => mark('prepare'),
      beforeStep: (_what, n, name) => mark(`${n} ${name}`),
    });
    mark('');
  }

  // CPU seconds of this process (all its threads; not the tools it runs): under load the
  // wall times are mostly waiting for a core
  /** @type {{raw: number[], apply: number[], rawCpu: number[], applyCpu: number[]}} */
  const times = {raw: [], apply: [], rawCpu: [], applyCpu: []};
  for (let i = 0; i < RUNS; i++) {
    let t = performance.now();
    let c = cpuNow();
    rawCopyAndHash();
    times.raw.push((performance.now() - t) / 1000);
    times.rawCpu.push(cpuNow() - c);
    t = performance.now();
    c = cpuNow();
    await apply();
    times.apply.push((performance.now() - t) / 1000);
    times.applyCpu.push(cpuNow() - c);
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const raw = median(times.raw);
  const app = median(times.apply);
  console.log(`ostar ${(size / 1048576).toFixed(1)} MiB, ${RUNS} runs each, medians:`);
  console.log(`  raw copy + sha256:    ${raw.toFixed(3)} s   (${times.raw.map((t) => t.toFixed(3)).join(' ')})`);
  console.log(`  neuralupgrade apply:  ${app.toFixed(3)} s   (${times.apply.map((t) => t.toFixed(3)).join(' ')})`);
  console.log(`  ratio apply / raw:    ${(app / raw).toFixed(2)}x (goal <= 2.5x)`);
  console.log(`  CPU of this process:  raw ${median(times.rawCpu).toFixed(3)} s, apply ${median(times.applyCpu).toFixed(3)} s`);
  console.log('apply phases, medians (wall, CPU of this process):');
  for (const [name, list] of phases) console.log(`  ${name.padEnd(14)} ${median(list).toFixed(3)} s  ${median(cpuPhases.get(name)).toFixed(3)} s`);
} finally {
  rmSync(dir, {recursive: true, force: true});
}
