#!/usr/bin/env node
// Benchmark: `psy deaddrop forcepush` vs `aws s3 sync` vs `rclone sync`, side by side in
// one run, on the same deaddrop-shaped replica (~100 objects, some over 100 MB, plus
// latest symlinks) against the same local s3rver, each tool in its own bucket:
//   first push, no-op push, one-file-changed push.
// Prints wall times, ratios (psy / peer) and what each tool made of the symlinks.
// Usage: npm run build && node bench/deaddrop-sync.mjs [--big-mb 110] [--runs 3] [--json]
//        [--baseline DIR]  also runs the psy checkout (built) in DIR as "psy-base", to
//                          compare a change with what it replaces in the same run
import {spawn, spawnSync} from 'node:child_process';
import {createHash, randomBytes} from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {createInterface} from 'node:readline';
import {fileURLToPath, pathToFileURL} from 'node:url';
import {parseArgs} from 'node:util';
import {DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client} from '@aws-sdk/client-s3';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Runs the benchmark; `argv` as on the command line. */
export async function run(argv) {
  const {values: args} = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: {
      'big-mb': {type: 'string', default: '110'},
      runs: {type: 'string', default: '3'},
      json: {type: 'boolean', default: false},
      keep: {type: 'boolean', default: false},
      baseline: {type: 'string'},
    },
  });
  const BIG = Number(args['big-mb']) * 2 ** 20;
  const RUNS = Number(args.runs);
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

  const work = mkdtempSync(join(tmpdir(), 'psy-bench-deaddrop-'));
  const replica = join(work, 'project', 'cache', 'deaddrop');
  const log = (...a) => process.stderr.write(a.join(' ') + '\n');

  function fill(path, size, seed) {
    const fd = openSync(path, 'w');
    const block = randomBytes(1 << 20);
    block.write(seed);
    for (let left = size; left > 0; left -= block.length) writeSync(fd, block, 0, Math.min(left, block.length));
    closeSync(fd);
  }

  // ---- the replica: 3 OS tarballs (>100 MB), 3 ESP tarballs, signatures, latest links, 80 APKs
  function makeReplica() {
    const os = join(replica, 'os');
    const apk = join(replica, 'apk', 'v3.21', 'psyopsOS', 'x86_64');
    mkdirSync(os, {recursive: true});
    mkdirSync(apk, {recursive: true});
    const versions = ['20250101-000000', '20250201-000000', '20250301-000000'];
    versions.forEach((v, i) => {
      fill(join(os, `psyopsOS.x86_64.${v}.tar`), BIG + i * 4096, `os${v}`);
      writeFileSync(join(os, `psyopsOS.x86_64.${v}.tar.minisig`), `untrusted comment: sig\nRUQ${v}\ntrusted comment: version=${v}\nxx\n`);
      fill(join(os, `psyopsESP.x86_64-uefi.${v}.tar`), 3 * 2 ** 20 + i, `esp${v}`);
      writeFileSync(join(os, `psyopsESP.x86_64-uefi.${v}.tar.minisig`), `untrusted comment: sig\nRUQ${v}\ntrusted comment: version=${v}\nyy\n`);
    });
    symlinkSync(`psyopsOS.x86_64.${versions[2]}.tar.minisig`, join(os, 'psyopsOS.x86_64.latest.tar.minisig'));
    symlinkSync(`psyopsESP.x86_64-uefi.${versions[2]}.tar.minisig`, join(os, 'psyopsESP.x86_64-uefi.latest.tar.minisig'));
    for (let i = 0; i < 80; i++) fill(join(apk, `pkg${String(i).padStart(2, '0')}-1.0-r0.apk`), 2000 + ((i * 7919) % 400_000), `apk${i}`);
    writeFileSync(join(apk, 'APKINDEX.tar.gz'), randomBytes(30_000));
  }

  async function startServer() {
    const child = spawn(
      process.execPath,
      ['--openssl-legacy-provider', join(repo, 'test', 'helpers', 'deaddrop-s3rver.mjs'), join(work, 's3'), 'bench-psy,bench-psy-base,bench-aws,bench-rclone'],
      {stdio: ['pipe', 'pipe', 'inherit']},
    );
    const port = await new Promise((ok, bad) => {
      createInterface({input: child.stdout}).once('line', (l) => ok(JSON.parse(l).port));
      child.once('exit', (c) => bad(new Error(`s3rver exited ${c}`)));
    });
    return {child, endpoint: `http://127.0.0.1:${port}`};
  }

  const {child: server, endpoint} = await startServer();
  const creds = {
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  /** @type {NodeJS.ProcessEnv} */
  const env = {
    ...process.env,
    ...creds,
    // botocore ≥ 1.36 sends aws-chunked trailing checksums that s3rver stores verbatim
    AWS_REQUEST_CHECKSUM_CALCULATION: 'when_required',
    AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required',
  };
  // rclone's S3 backend refuses a custom CA bundle with its own transport; the server is plain http
  delete env.AWS_CA_BUNDLE;

  mkdirSync(join(work, 'project'), {recursive: true});
  writeFileSync(
    join(work, 'project', 'build.config.ts'),
    `export default {targets: [], settings: {deaddrop: {s3: {bucket: 'bench-psy', endpoint: '${endpoint}', region: 'us-east-1'}}}};\n`,
  );

  if (args.baseline) {
    // same replica (through a link), its own bucket
    mkdirSync(join(work, 'project-base'), {recursive: true});
    symlinkSync(join(work, 'project', 'cache'), join(work, 'project-base', 'cache'));
    writeFileSync(
      join(work, 'project-base', 'build.config.ts'),
      `export default {targets: [], settings: {deaddrop: {s3: {bucket: 'bench-psy-base', endpoint: '${endpoint}', region: 'us-east-1'}}}};\n`,
    );
  }
  const tools = {
    psy: () => [process.execPath, [join(repo, 'bin', 'psy.js'), 'deaddrop', 'forcepush'], join(work, 'project')],
    ...(args.baseline
      ? {'psy-base': () => [process.execPath, [join(String(args.baseline), 'bin', 'psy.js'), 'deaddrop', 'forcepush'], join(work, 'project-base')]}
      : {}),
    aws: () => [
      'aws',
      ['s3', 'sync', replica, 's3://bench-aws', '--endpoint-url', endpoint, '--delete', '--exclude', '.psy-*', '--exclude', '*/.psy-*', '--only-show-errors'],
      work,
    ],
    rclone: () => [
      'rclone',
      [
        'sync',
        replica,
        ':s3:bench-rclone',
        '--s3-provider',
        'Other',
        '--s3-endpoint',
        endpoint,
        '--s3-access-key-id',
        'S3RVER',
        '--s3-secret-access-key',
        'S3RVER',
        '--s3-region',
        'us-east-1',
        '--exclude',
        '.psy-*',
        '--config',
        '/dev/null',
        '-q',
      ],
      work,
    ],
  };

  function timeRun(name) {
    const [cmd, argv, cwd] = tools[name]();
    const t0 = performance.now();
    const r = spawnSync(cmd, argv, {cwd, env, encoding: 'utf8'});
    const ms = performance.now() - t0;
    if (r.status !== 0) throw new Error(`${name} failed (${r.status}): ${r.stderr.slice(0, 400)}`);
    return ms;
  }

  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: {accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER'},
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  async function emptyBucket(bucket) {
    for (;;) {
      const list = await client.send(new ListObjectsV2Command({Bucket: bucket}));
      const keys = (list.Contents ?? []).map((o) => ({Key: o.Key}));
      if (keys.length === 0) return;
      await client.send(new DeleteObjectsCommand({Bucket: bucket, Delete: {Objects: keys, Quiet: true}}));
    }
  }

  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const results = {};
  // Runs interleave the tools (psy, aws, rclone, psy, ...) so load from other processes
  // on the machine spreads over all of them alike.
  async function phase(label, runs, before) {
    const times = Object.fromEntries(Object.keys(tools).map((n) => [n, /** @type {number[]} */ ([])]));
    for (let i = 0; i < runs; i++) {
      for (const name of Object.keys(tools)) {
        await before?.(name, i);
        times[name].push(timeRun(name));
      }
    }
    results[label] = {};
    for (const name of Object.keys(tools)) {
      results[label][name] = median(times[name]);
      log(
        `${label.padEnd(18)} ${name.padEnd(7)} ${(results[label][name] / 1000).toFixed(2)} s (median of ${runs}: ${times[name].map((t) => (t / 1000).toFixed(2)).join(' ')})`,
      );
    }
  }

  try {
    log(`replica: building (3 × ${(BIG / 2 ** 20).toFixed(0)} MiB OS tarballs + 91 smaller files + 2 latest symlinks)`);
    makeReplica();
    // every first push starts from an empty bucket, and psy without its hash cache
    await phase('first push', RUNS, async (name) => {
      await emptyBucket(`bench-${name}`);
      rmSync(join(replica, '.psy-sync-state.json'), {force: true});
    });
    await phase('no-op push', RUNS);
    // each tool gets its own change, so every run has exactly one changed file to send
    await phase('one file changed', RUNS, (name, i) =>
      fill(join(replica, 'apk', 'v3.21', 'psyopsOS', 'x86_64', 'pkg40-1.0-r0.apk'), 300_000, `${name}${i}${Date.now()}`),
    );

    // ---- correctness: sizes intact, and what became of the latest symlinks
    const latest = 'os/psyopsOS.x86_64.latest.tar.minisig';
    const symlinks = {};
    for (const name of Object.keys(tools)) {
      const bucket = `bench-${name}`;
      const list = await client.send(new ListObjectsV2Command({Bucket: bucket}));
      const keys = (list.Contents ?? []).map((o) => String(o.Key));
      let note;
      try {
        const h = await client.send(new HeadObjectCommand({Bucket: bucket, Key: latest}));
        note = h.WebsiteRedirectLocation
          ? `redirect object (0 bytes) -> ${h.WebsiteRedirectLocation}`
          : `plain ${h.ContentLength}-byte copy of the target, no redirect (a later publish leaves it stale)`;
      } catch {
        const rl = keys.find((k) => k.startsWith(latest));
        note = rl ? `stored as ${rl}` : 'missing (symlink skipped)';
      }
      // every regular file arrived byte-exact in size (the aws-chunked trap adds bytes),
      // and one signature in content
      const sizes = new Map((list.Contents ?? []).map((o) => [o.Key, o.Size]));
      const wrongSize = [...sizes].filter(([k, size]) => {
        const local = join(replica, ...String(k).split('/'));
        return !lstatSync(local, {throwIfNoEntry: false})?.isSymbolicLink() && existsSync(local) && statSync(local).size !== size;
      });
      const sigKey = 'os/psyopsOS.x86_64.20250301-000000.tar.minisig';
      const sig = await client.send(new GetObjectCommand({Bucket: bucket, Key: sigKey}));
      const sameSig =
        createHash('sha256')
          .update(Buffer.from((await sig.Body?.transformToByteArray()) ?? []))
          .digest('hex') ===
        createHash('sha256')
          .update(readFileSync(join(replica, ...sigKey.split('/'))))
          .digest('hex');
      symlinks[name] = {objects: keys.length, latest: note, intact: wrongSize.length === 0 && sameSig};
    }

    const out = {replica: {objects: 96, symlinks: 2, bigMiB: BIG / 2 ** 20}, seconds: {}, ratios: {}, symlinks};
    for (const [label, r] of Object.entries(results)) {
      out.seconds[label] = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, +(v / 1000).toFixed(3)]));
      out.ratios[label] = {
        'psy/aws': +(r.psy / r.aws).toFixed(2),
        'psy/rclone': +(r.psy / r.rclone).toFixed(2),
        'psy/fastest peer': +(r.psy / Math.min(r.aws, r.rclone)).toFixed(2),
        ...(r['psy-base'] ? {'psy/psy-base': +(r.psy / r['psy-base']).toFixed(2)} : {}),
      };
    }
    if (args.json) console.log(JSON.stringify(out, null, 2));
    else {
      console.log(`\ndeaddrop sync benchmark (same replica, same s3rver on 127.0.0.1, one run, median of ${RUNS})`);
      console.log(`${'phase'.padEnd(18)} ${'psy'.padStart(8)} ${'aws'.padStart(8)} ${'rclone'.padStart(8)}   psy/aws  psy/rclone`);
      for (const [label, s] of Object.entries(out.seconds)) {
        console.log(
          `${label.padEnd(18)} ${s.psy.toFixed(2).padStart(7)}s ${s.aws.toFixed(2).padStart(7)}s ${s.rclone.toFixed(2).padStart(7)}s   ${out.ratios[label]['psy/aws'].toFixed(2).padStart(7)}  ${out.ratios[label]['psy/rclone'].toFixed(2).padStart(10)}${s['psy-base'] ? `   psy-base ${s['psy-base'].toFixed(2)}s (psy/psy-base ${out.ratios[label]['psy/psy-base'].toFixed(2)})` : ''}`,
        );
      }
      console.log('\neach bucket after the runs:');
      for (const [name, s] of Object.entries(symlinks))
        console.log(`  ${name.padEnd(7)} ${s.objects} objects, ${s.intact ? 'contents intact' : 'CONTENTS DIFFER'}; latest: ${s.latest}`);
    }
  } finally {
    server.kill('SIGTERM');
    if (!args.keep) rmSync(work, {recursive: true, force: true});
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await run(process.argv.slice(2));
