import {closeSync, fsyncSync, openSync, readSync, writeSync, constants as fsc} from 'node:fs';
import {mkdtemp, rm, writeFile} from 'node:fs/promises';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {PsyError} from '../errors.js';
import {runToolExit} from '../tools/run.js';

/**
 * A FAT filesystem (the ESP) inside an image file or a block device, reached with
 * mtools at a byte offset: no mount, no root. The same code serves a disk image
 * (`--disk FILE`) and a live node (the ESP partition device, which is `noauto` and not
 * mounted while neuralupgrade runs).
 */
export class FatVolume {
  readonly #path: string;
  readonly #offset: number;
  readonly #env: Record<string, string>;

  constructor(path: string, offset: number, sourceDateEpoch?: number) {
    this.#path = path;
    this.#offset = offset;
    this.#env = {MTOOLS_SKIP_CHECK: '1'};
    if (sourceDateEpoch !== undefined) this.#env['SOURCE_DATE_EPOCH'] = String(sourceDateEpoch);
  }

  get path(): string {
    return this.#path;
  }
  get offset(): number {
    return this.#offset;
  }

  #image(): string {
    return `${this.#path}@@${this.#offset}`;
  }

  async #mtool(tool: string, args: string[]): Promise<{stdout: Buffer; code: number; stderr: string}> {
    const r = await runToolExit(tool, ['-i', this.#image(), ...args], {env: this.#env});
    return {stdout: r.stdout, code: r.code, stderr: r.stderr.toString('utf8').trim()};
  }

  async #must(tool: string, args: string[], what: string): Promise<Buffer> {
    const r = await this.#mtool(tool, args);
    if (r.code !== 0) throw new PsyError('esp-write-failed', `${what} on the ESP in ${this.#path} failed: ${r.stderr || tool + ' exit ' + r.code}`);
    return r.stdout;
  }

  /** A file's bytes, or undefined when it does not exist. */
  async read(path: string): Promise<Buffer | undefined> {
    const r = await this.#mtool('mcopy', ['-n', `::${path}`, '-']);
    return r.code === 0 ? r.stdout : undefined;
  }

  async exists(path: string): Promise<boolean> {
    const r = await this.#mtool('mdir', ['-b', `::${path}`]);
    return r.code === 0;
  }

  /** Entries of a directory: names, with a trailing `/` for directories. */
  async list(dir: string): Promise<string[]> {
    const r = await this.#mtool('mdir', ['-b', `::${dir}`]);
    if (r.code !== 0) return [];
    const prefix = `::${dir.endsWith('/') ? dir : dir + '/'}`;
    return r.stdout
      .toString('utf8')
      .split('\n')
      .filter((l) => l.startsWith(prefix))
      .map((l) => l.slice(prefix.length))
      .filter((n) => n !== '' && n !== './' && n !== '../');
  }

  async mkdirp(dir: string): Promise<void> {
    let cur = '';
    for (const part of dir.split('/').filter(Boolean)) {
      cur += '/' + part;
      if (!(await this.exists(cur))) await this.#must('mmd', [`::${cur}`], `creating ${cur}`);
    }
  }

  /** Creates or replaces a file (not atomic: used for new names beside the live ones). */
  async write(path: string, data: Uint8Array): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'psy-esp-'));
    try {
      const src = join(dir, 'f');
      await writeFile(src, data);
      await this.#must('mcopy', ['-o', src, `::${path}`], `writing ${path}`);
    } finally {
      await rm(dir, {recursive: true, force: true});
    }
  }

  /** Renames over an existing target: one directory-entry change, the switch. */
  async rename(from: string, to: string): Promise<void> {
    await this.#must('mmove', ['-o', `::${from}`, `::${to}`], `renaming ${from} to ${to}`);
  }

  async remove(path: string): Promise<void> {
    if (await this.exists(path)) await this.#must('mdel', [`::${path}`], `removing ${path}`);
  }

  async removeTree(path: string): Promise<void> {
    if (await this.exists(path)) await this.#must('mdeltree', [`::${path}`], `removing ${path}`);
  }

  /**
   * Overwrites an existing file's bytes where they are, as GRUB's save_env does: no
   * allocation, no directory change, the same size. Used for the environment block so
   * a power cut can never leave it truncated.
   */
  async overwriteInPlace(path: string, data: Uint8Array): Promise<void> {
    const r = await this.#mtool('mshowfat', [`::${path}`]);
    if (r.code !== 0) throw new PsyError('esp-write-failed', `${path} does not exist on the ESP in ${this.#path}`);
    const clusters = parseShowFat(r.stdout.toString('utf8'));
    const geo = this.#geometry();
    const fileSize = (await this.read(path))?.length ?? -1;
    if (fileSize !== data.length) {
      throw new PsyError('esp-write-failed', `${path} on the ESP is ${fileSize} bytes, expected ${data.length}`);
    }
    const fd = openSync(this.#path, fsc.O_WRONLY);
    try {
      let done = 0;
      for (const c of clusters) {
        if (done >= data.length) break;
        const at = this.#offset + geo.dataStart + (c - 2) * geo.clusterBytes;
        const n = Math.min(geo.clusterBytes, data.length - done);
        let w = 0;
        while (w < n) w += writeSync(fd, data, done + w, n - w, at + w);
        done += n;
      }
      if (done < data.length) throw new PsyError('esp-write-failed', `${path}: cluster chain shorter than the file`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Replaces `dir/target` by `dir/source` with one 32-byte directory-entry write, as the
   * kernel's vfat rename does: the target's entry takes the source's first cluster and
   * size (the switch), then the source entry is marked deleted and the target's old
   * clusters are freed. Both must be plain 8.3 upper-case names (no long-name entries).
   * A power cut leaves either the old file or the new one under the target name, never
   * neither (mtools' own rename-over removes the target first).
   */
  async switchFile(dir: string, source: string, target: string): Promise<void> {
    const short = (n: string): Buffer => {
      const m = /^([A-Z0-9_-]{1,8})(?:\.([A-Z0-9_-]{1,3}))?$/.exec(n);
      if (!m) throw new PsyError('esp-write-failed', `${n} is not a plain 8.3 name`);
      return Buffer.from(m[1]!.padEnd(8, ' ') + (m[2] ?? '').padEnd(3, ' '), 'latin1');
    };
    const geo = this.#geometry();
    if (!geo.fat32) {
      await this.rename(`${dir}/${source}`, `${dir}/${target}`);
      return;
    }
    const dirClusters = parseShowFat((await this.#must('mshowfat', [`::${dir}`], `reading ${dir}`)).toString('utf8'));
    const oldClusters = parseShowFat((await this.#must('mshowfat', [`::${dir}/${target}`], `reading ${dir}/${target}`)).toString('utf8'));
    const want = {source: short(source), target: short(target)};
    const found: {source?: number; target?: number} = {};
    const fd = openSync(this.#path, fsc.O_RDWR);
    try {
      const buf = Buffer.alloc(geo.clusterBytes);
      for (const c of dirClusters) {
        const at = this.#offset + geo.dataStart + (c - 2) * geo.clusterBytes;
        readSync(fd, buf, 0, buf.length, at);
        for (let e = 0; e < buf.length; e += 32) {
          if (buf[e] === 0 || buf[e] === 0xe5 || (buf[e + 11]! & 0x0f) === 0x0f) continue;
          const name = buf.subarray(e, e + 11);
          if (name.equals(want.source)) found.source = at + e;
          if (name.equals(want.target)) found.target = at + e;
        }
      }
      if (found.source === undefined || found.target === undefined) {
        throw new PsyError('esp-write-failed', `${dir}: directory entries for ${source} and ${target} not found`);
      }
      const src = Buffer.alloc(32);
      const dst = Buffer.alloc(32);
      readSync(fd, src, 0, 32, found.source);
      readSync(fd, dst, 0, 32, found.target);
      // the switch: first cluster (high 20-21, low 26-27), size (28-31) and times of the new file
      src.copy(dst, 13, 13, 32);
      writeSync(fd, dst, 0, 32, found.target);
      fsyncSync(fd);
      // the source name goes away without freeing the clusters it now shares with the target
      writeSync(fd, Buffer.from([0xe5]), 0, 1, found.source);
      fsyncSync(fd);
      // the target's old clusters are free again, in every FAT copy
      const bs = Buffer.alloc(512);
      readSync(fd, bs, 0, 512, this.#offset);
      const bps = bs.readUInt16LE(11);
      const fats = bs.readUInt8(16);
      const fatBytes = (bs.readUInt16LE(22) || bs.readUInt32LE(36)) * bps;
      const fatStart = this.#offset + bs.readUInt16LE(14) * bps;
      const entry = Buffer.alloc(4);
      for (const c of oldClusters) {
        for (let f = 0; f < fats; f++) {
          const at = fatStart + f * fatBytes + c * 4;
          readSync(fd, entry, 0, 4, at);
          // keep the reserved top four bits of a FAT32 entry
          entry.writeUInt32LE(entry.readUInt32LE(0) & 0xf0000000, 0);
          writeSync(fd, entry, 0, 4, at);
        }
      }
      // FSInfo's free-cluster count is only a hint, but keep it right for fsck
      const info = this.#offset + bs.readUInt16LE(48) * bps;
      const fsinfo = Buffer.alloc(512);
      readSync(fd, fsinfo, 0, 512, info);
      if (fsinfo.readUInt32LE(0) === 0x41615252 && fsinfo.readUInt32LE(484) === 0x61417272) {
        const free = fsinfo.readUInt32LE(488);
        if (free !== 0xffffffff) {
          entry.writeUInt32LE(free + oldClusters.length, 0);
          writeSync(fd, entry, 0, 4, info + 488);
        }
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Free bytes (as mtools counts them) and the cluster size every file is rounded up to. */
  async space(): Promise<{free: number; clusterBytes: number}> {
    const r = await this.#mtool('mdir', ['::/']);
    // mtools groups digits with spaces: "41 281 024 bytes free"
    const m = /([\d ]+) bytes free/.exec(r.stdout.toString('utf8'));
    if (r.code !== 0 || !m)
      throw new PsyError('esp-damaged', `cannot read the free space of the ESP in ${this.#path}: ${r.stderr || 'no "bytes free" from mdir'}`);
    return {free: Number(m[1]!.replace(/ /g, '')), clusterBytes: this.#geometry().clusterBytes};
  }

  /** fsync the image or device, so everything mtools wrote is on stable storage. */
  flush(): void {
    const fd = openSync(this.#path, fsc.O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  #geometry(): {dataStart: number; clusterBytes: number; fat32: boolean} {
    const bs = Buffer.alloc(512);
    const fd = openSync(this.#path, fsc.O_RDONLY);
    try {
      readSync(fd, bs, 0, 512, this.#offset);
    } finally {
      closeSync(fd);
    }
    const bytesPerSector = bs.readUInt16LE(11);
    const sectorsPerCluster = bs.readUInt8(13);
    const reserved = bs.readUInt16LE(14);
    const fats = bs.readUInt8(16);
    const rootEntries = bs.readUInt16LE(17);
    const fatSize16 = bs.readUInt16LE(22);
    const fatSize = fatSize16 !== 0 ? fatSize16 : bs.readUInt32LE(36);
    if (bytesPerSector === 0 || sectorsPerCluster === 0 || bs.readUInt16LE(510) !== 0xaa55) {
      throw new PsyError('esp-damaged', `no FAT boot sector at offset ${this.#offset} of ${this.#path}`);
    }
    const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
    return {
      dataStart: (reserved + fats * fatSize + rootDirSectors) * bytesPerSector,
      clusterBytes: sectorsPerCluster * bytesPerSector,
      fat32: fatSize16 === 0,
    };
  }
}

/** mshowfat prints `::/path <5-10> <14>`: the file's clusters in order. */
export function parseShowFat(text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(/<(\d+)(?:-(\d+))?>/g)) {
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    for (let c = a; c <= b; c++) out.push(c);
  }
  return out;
}
