import {chmodSync, mkdirSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';

/** A project with packages declared the way psy users declare them. */
export function declareOwnPackages(project: string): string {
  const dir = join(project, 'alpine/packages');
  const declare = (name: string, apk: unknown, files: Record<string, [string, number]> = {}, scripts: Record<string, string> = {}) => {
    const d = join(dir, name);
    mkdirSync(d, {recursive: true});
    writeFileSync(join(d, 'apk.json'), JSON.stringify(apk));
    for (const [p, [body, mode]] of Object.entries(files)) {
      mkdirSync(join(d, 'files', p, '..'), {recursive: true});
      writeFileSync(join(d, 'files', p), body);
      chmodSync(join(d, 'files', p), mode);
    }
    for (const [s, body] of Object.entries(scripts)) {
      mkdirSync(join(d, 'scripts'), {recursive: true});
      writeFileSync(join(d, 'scripts', s), body);
    }
  };
  // noarch, like neuralupgrade: installed by default on every node
  declare(
    'psy-hello',
    {
      version: '1.0-r0',
      depends: ['busybox'],
      paths: {'usr/bin/psy-hello': {mode: '4711'}, 'etc/psy-hello/secret': {mode: '0600', uid: 0, gid: 42}},
      dirs: ['var/lib/psy-hello'],
      symlinks: {'usr/bin/hi': 'psy-hello'},
      triggers: ['/usr/share/psy-hello/*'],
    },
    {'usr/bin/psy-hello': ['#!/bin/sh\necho hello\n', 0o755], 'etc/psy-hello/secret': ['s3cret\n', 0o644], 'usr/share/psy-hello/data.txt': ['data\n', 0o644]},
    {'post-install': '#!/bin/sh\nexit 0\n', trigger: '#!/bin/sh\nexit 0\n'},
  );
  declare(
    'psy-arch',
    {version: '2.1-r3', arch: 'x86_64', description: 'an arch package', provides: ['cmd:psy-arch=2.1-r3'], installIf: ['psy-hello']},
    {
      'usr/libexec/psy/arch': ['binary\n', 0o755],
    },
  );
  return dir;
}
