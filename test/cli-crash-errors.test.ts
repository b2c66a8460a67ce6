import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {dirname, join} from 'node:path';
import {afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest';
import kernel from '../rules/kernel.js';
import {readModuleTree} from '../src/image/kmod.js';
import {assertBuilt, psy} from './helpers/deaddrop-cli.js';
import {runRule} from './helpers/rule-context.js';
import {repoRoot} from './helpers/shared-data.js';

/**
 * Failures that used to crash (a stack trace, "internal error", exit 70) or spill over
 * several lines: each is one line naming the file and the cause, exit 1.
 */
let dir: string;
beforeAll(() => assertBuilt());
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'psy-crash-errors-'));
  writeFileSync(join(dir, 'os.tar'), Buffer.alloc(1000, 7));
});
afterEach(() => rmSync(dir, {recursive: true, force: true}));

/** One line on stderr, exit 1 (2: a usage error), no stack trace and no internal error. */
function expectOneLine(r: {code: number | null; stderr: string}, code = 1): string {
  expect(r.code, r.stderr).toBe(code);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at |node:internal|node:fs/);
  const lines = r.stderr.replace(/\n$/, '').split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0]!;
}

describe('psy sign: a secret key with corrupted scrypt limits', () => {
  /** An encrypted key whose opslimit and memlimit fields are overwritten. */
  async function corruptedKey(opslimit: bigint, memlimit: bigint): Promise<void> {
    const k = await psy(['keygen', '--fast-kdf', '-s', 'r.key', '-p', 'r.pub'], dir, {PSY_SIGNING_PASSWORD: 'pw'});
    expect(k.code, k.stderr).toBe(0);
    const [comment, b64] = readFileSync(join(dir, 'r.key'), 'utf8').split('\n');
    const raw = Buffer.from(b64!, 'base64');
    raw.writeBigUInt64LE(opslimit, 38);
    raw.writeBigUInt64LE(memlimit, 46);
    writeFileSync(join(dir, 'r.key'), `${comment}\n${raw.toString('base64')}\n`);
  }

  it.each([
    ['an opslimit Node refuses', 2n ** 64n - 1n, 16777216n, /p=134217727 \(2097152 times minisign's default work\)/],
    ['an opslimit that would take hours', 2n ** 40n, 1073741824n, /N=2\^20 r=8 p=32768 \(32768 times minisign's default work\)/],
    ['limits asking for 64 GiB', 2n ** 40n, 2n ** 36n, /N=2\^26 r=8 p=512 \(64 GiB of memory\)/],
  ])('%s: one line naming the key file, nothing signed', async (_what, ops, mem, detail) => {
    await corruptedKey(ops, mem);
    const started = Date.now();
    const r = await psy(['sign', '-s', 'r.key', 'os.tar'], dir, {PSY_SIGNING_PASSWORD: 'pw'});
    const line = expectOneLine(r);
    expect(line).toMatch(
      new RegExp(`^psy sign: r\\.key: corrupted key file: its key derivation limits \\(opslimit ${ops}, memlimit ${mem}\\) ask for scrypt `),
    );
    expect(line).toMatch(detail);
    expect(line).toMatch(/, more than psy allows$/);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(existsSync(join(dir, 'os.tar.minisig'))).toBe(false);
  });
});

describe('psy sign: a line break in the trusted comment', () => {
  it('-t with a newline is refused on one line', async () => {
    expect((await psy(['keygen', '-W', '-s', 'k.key'], dir)).code).toBe(0);
    const r = await psy(['sign', '-s', 'k.key', '-t', 'type=psyopsOS\nversion=2', 'os.tar'], dir);
    expect(expectOneLine(r)).toBe('psy sign: --trusted-comment: a trusted comment is one line, this one holds a line break ("type=psyopsOS\\nversion=2")');
    expect(existsSync(join(dir, 'os.tar.minisig'))).toBe(false);
  });

  it('--field with a newline in its value or key is refused on one line', async () => {
    expect((await psy(['keygen', '-W', '-s', 'k.key'], dir)).code).toBe(0);
    const v = await psy(['sign', '-s', 'k.key', '--field', 'version=2\nforged=1', 'os.tar'], dir);
    expect(expectOneLine(v)).toBe(`psy sign: bad trusted comment value for 'version': "2\\nforged=1" (no spaces, '=' or empty values)`);
    const k = await psy(['sign', '-s', 'k.key', '--field', 'a\nb', 'os.tar'], dir);
    expect(expectOneLine(k, 2)).toBe('psy sign: --field "a\\nb" is not KEY=VALUE');
  });
});

describe('a full disk while appending to the engine state log', () => {
  it('fails the step with one line naming the log and the cause; the next build recovers', async () => {
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src/a.txt'), 'a\n');
    writeFileSync(
      join(dir, 'build.config.ts'),
      `export default {targets: [
        {name: 'a', inputs: {s: 'src/a.txt'}, outputs: {o: 'a.txt'}, command: 'cp $in $out'},
        {name: 'b', inputs: {s: {target: 'a'}}, outputs: {o: 'b.txt'}, command: 'cp $in $out'},
      ]};\n`,
    );
    // Fault injection: every append to cache/state/log fails with ENOSPC, as on a full disk.
    const full = await psy(['build'], dir, {
      NODE_OPTIONS: `--require ${join(repoRoot, 'test/helpers/enospc-preload.cjs')}`,
      PSY_TEST_ENOSPC: '/cache/state/log',
    });
    expect(full.code).toBe(1);
    const all = full.stdout + full.stderr;
    expect(all).toContain(
      `FAILED: a: state log ${join(dir, 'cache/state/log')}: cannot append to it (no space left on device, ENOSPC); what was built is not recorded and will be built again\n`,
    );
    expect(all).not.toMatch(/could not move outputs into place|node:fs|internal error|\n\s+at /);
    expect(full.stderr).toBe('psy build: 1 target failed: a\n');

    const again = await psy(['build'], dir);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/\[1\/2\] a\n\[2\/2\] b\n/);
    expect(readFileSync(join(dir, 'cache/out/b.txt'), 'utf8')).toBe('a\n');
  });
});

describe('a kernel package with modules.order but no modules', () => {
  function kernelRoot(order: string): string {
    const root = join(dir, 'root');
    const put = (rel: string, text: string) => {
      mkdirSync(dirname(join(root, rel)), {recursive: true});
      writeFileSync(join(root, rel), text);
    };
    put('boot/vmlinuz-lts', 'k');
    put('boot/System.map-lts', 'm');
    put('boot/config-lts', 'c');
    put('lib/modules/6.1.0-test/modules.order', order);
    put('lib/modules/6.1.0-test/modules.builtin', 'kernel/fs/ext4/ext4.ko\n');
    return root;
  }
  const outputs = {kernel: 'file', systemMap: 'file', config: 'file', version: 'file', modules: 'dir'} as const;

  it('is refused in one line naming the file and the cause', async () => {
    const root = kernelRoot('kernel/fs/squashfs/squashfs.ko\nkernel/drivers/block/loop.ko\n');
    const err = (await runRule(kernel, {inputs: {root: [root]}, params: {flavor: 'lts'}, outputs}).catch((e: unknown) => e)) as Error & {code?: string};
    expect(err.code).toBe('kernel-modules');
    expect(err.message).toBe('kernel (linux-lts): lib/modules/6.1.0-test/modules.order lists 2 modules, but the package holds no module files');
  });

  it('an empty modules.order (a kernel without modules) builds, and the initramfs finds no modules instead of crashing', async () => {
    const root = kernelRoot('');
    const r = await runRule(kernel, {inputs: {root: [root]}, params: {flavor: 'lts'}, outputs});
    const mods = join(r.outputs['modules']!, 'lib/modules/6.1.0-test');
    expect(readFileSync(join(mods, 'modules.builtin'), 'utf8')).toBe('kernel/fs/ext4/ext4.ko\n');
    const tree = await readModuleTree(mods);
    expect(tree.modules).toEqual([]);
    rmSync(r.scratch, {recursive: true, force: true});
  });
});
