import {spawn} from 'node:child_process';
import {PsyError} from '../errors.js';
import type {RunOptions, RunResult} from '../engine/rule.js';

/**
 * How the disk and image libraries start external programs. Rules pass `ctx.run` (killed
 * with the build, output in the step log); other callers (neuralupgrade, tests) get
 * `runTool`, which behaves the same way on its own.
 */
export type ToolRunner = (
  command: string,
  args: readonly string[],
  options?: RunOptions,
) => Promise<RunResult>;

/** The Debian package that provides each program these libraries run. */
export const debianPackageOf: Readonly<Record<string, string>> = {
  sfdisk: 'fdisk',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  mmd: 'mtools',
  mdir: 'mtools',
  mdel: 'mtools',
  mdeltree: 'mtools',
  mke2fs: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  mksquashfs: 'squashfs-tools',
  unsquashfs: 'squashfs-tools',
  'grub-mkimage': 'grub-common',
  'qemu-system-x86_64': 'qemu-system-x86',
  patch: 'patch',
  diff: 'diffutils',
  zstd: 'zstd',
  xz: 'xz-utils',
  gzip: 'gzip',
  depmod: 'kmod',
  modinfo: 'kmod',
  blkid: 'util-linux',
  cp: 'coreutils',
  'ssh-keygen': 'openssh-client',
  ssh: 'openssh-client',
  'nebula-cert': 'nebula',
  age: 'age',
};

export function missingToolError(command: string): PsyError {
  const pkg = debianPackageOf[command];
  const hint = pkg ? `install the Debian package ${pkg} (apt-get install ${pkg})` : 'install it';
  return new PsyError('missing-tool', `${command} not found on PATH: ${hint}`);
}

/** The last non-empty lines of a tool's output, joined to fit a one-line error. */
export function tailOf(text: string, lines = 3): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(-lines)
    .join(' | ');
}

/**
 * Run a program, collecting stdout and stderr. A missing program and a non-zero exit
 * become one-line PsyErrors naming the program (and for a missing one, its package).
 */
export function runTool(
  command: string,
  args: readonly string[],
  options: RunOptions & {signal?: AbortSignal} = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: {...process.env, ...options.env},
      stdio: ['pipe', 'pipe', 'pipe'],
      signal: options.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(missingToolError(command));
      else reject(new PsyError('tool-failed', `${command}: ${e.message}`));
    });
    child.on('close', (code, sig) => {
      const stdout = Buffer.concat(out);
      const stderr = Buffer.concat(err);
      if (code === 0) {
        resolvePromise({stdout, stderr});
        return;
      }
      const why = sig ? `killed by ${sig}` : `exit ${code}`;
      const detail = tailOf(stderr.toString() || stdout.toString());
      reject(new PsyError('tool-failed', `${command} failed (${why})${detail ? ': ' + detail : ''}`));
    });
    child.stdin.on('error', () => {});
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}
