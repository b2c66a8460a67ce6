import {spawnSync} from 'node:child_process';
import {mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, relative} from 'node:path';

/** An operator's age identity made by the real age-keygen: [key file, recipient]. */
export function ageKeygen(dir: string, name: string): {file: string; recipient: string; key: string} {
  const file = join(dir, name);
  const r = spawnSync('age-keygen', ['-o', file], {encoding: 'utf8'});
  if (r.status !== 0) throw new Error(`age-keygen: ${r.stderr}`);
  const key = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
  const recipient = spawnSync('age-keygen', ['-y', file], {encoding: 'utf8'}).stdout.trim();
  return {file, recipient, key};
}

export interface NodeProjectDir {
  readonly dir: string;
  /** env for psy: the operator's identity. */
  readonly env: Record<string, string>;
  readonly operator: {file: string; recipient: string; key: string};
}

/** A project whose build.config.ts lists one operator recipient (plus `extra` settings). */
export function nodeProject(prefix: string, configBody?: (recipients: string[]) => string): NodeProjectDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const operator = ageKeygen(dir, 'operator.key');
  writeFileSync(
    join(dir, 'build.config.ts'),
    configBody?.([operator.recipient]) ?? `export default {targets: [], settings: {nodes: {recipients: ${JSON.stringify([operator.recipient])}}}};\n`,
  );
  return {dir, operator, env: {PSY_AGE_IDENTITY: operator.file}};
}

/** Every file under `dir` with its bytes, for "nothing was written" checks. */
export function snapshotTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, {withFileTypes: true})) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'cache') walk(p);
      } else out[relative(dir, p)] = `${statSync(p).mode}:${readFileSync(p, 'base64')}`;
    }
  };
  walk(dir);
  return out;
}
