import {mkdirSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';

const TAR = 'tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner';

/**
 * A project whose build.config.ts makes small psyopsOS/psyopsESP tarballs and an
 * APK-repository-shaped folder with shell-command targets, and points
 * settings.deaddrop at them.
 */
export function writeProject(dir: string, deaddrop: Record<string, unknown>, extraSettings: Record<string, unknown> = {}): void {
  mkdirSync(join(dir, 'os'), {recursive: true});
  mkdirSync(join(dir, 'esp', 'grub'), {recursive: true});
  mkdirSync(join(dir, 'pkgs'), {recursive: true});
  writeFileSync(join(dir, 'os', 'kernel.version'), '6.6.36-0-lts\n');
  writeFileSync(join(dir, 'os', 'squashfs.alpine_version'), '3.21\n');
  writeFileSync(join(dir, 'os', 'squashfs'), Buffer.alloc(50_000, 1));
  writeFileSync(join(dir, 'esp', 'grub', 'grub.cfg'), '# grub\n');
  writeFileSync(join(dir, 'pkgs', 'psyopsOS-base-1.0-r0.apk'), 'base 1.0');
  writeConfig(dir, deaddrop, extraSettings);
}

export function writeConfig(dir: string, deaddrop: Record<string, unknown>, extraSettings: Record<string, unknown> = {}): void {
  const config = {
    targets: [
      {name: 'ostar', inputs: {src: {glob: 'os/**'}}, outputs: {tar: 'psyopsOS.tar'}, command: `${TAR} -cf "$out_tar" -C os .`},
      {name: 'esptar', inputs: {src: {glob: 'esp/**'}}, outputs: {tar: 'psyopsESP.tar'}, command: `${TAR} -cf "$out_tar" -C esp .`},
      {
        name: 'apkrepo',
        inputs: {src: {glob: 'pkgs/**'}},
        outputs: {repo: {dir: 'apkrepo'}},
        // the index lists the packages, one per line, so tests can check it never names a missing one
        command: 'd="$out_repo/v3.21/psyopsOS/x86_64" && mkdir -p "$d" && cp pkgs/*.apk "$d/" && (cd pkgs && ls *.apk) > "$d/APKINDEX.tar.gz"',
      },
    ],
    settings: {deaddrop, ...extraSettings},
  };
  writeFileSync(join(dir, 'build.config.ts'), `export default ${JSON.stringify(config, null, 2)};\n`);
}
