/**
 * Writes the psyopsOS project the real-graph benchmark builds (bench/real-graph.mjs):
 * the offline image project of the tests (test/os-project.ts: the fixture repository
 * made by the test helpers, the repository's alpine/ inputs) with one operator and one
 * node, so that its graph has the per-node image diskimg@NAME too.
 *
 *   node --import ./scripts/register-ts.mjs bench/real-graph-project.ts DIR NODE
 */
import {spawnSync} from 'node:child_process';
import {existsSync, mkdirSync} from 'node:fs';
import {join} from 'node:path';
import {buildFixtureRepository} from '../test/fixtures/build-fixture-repository.js';
import {ageKeygen} from '../test/helpers/node-project.js';
import {repoRoot} from '../test/helpers/shared-data.js';
import {fixtureSettings, writeProject} from '../test/os-project.js';

const [dir, node] = process.argv.slice(2);
if (dir === undefined || node === undefined) throw new Error('usage: real-graph-project.ts DIR NODE');
mkdirSync(dir, {recursive: true});
const fx = await buildFixtureRepository();
const operator = existsSync(join(dir, 'operator.key')) ? undefined : ageKeygen(dir, 'operator.key');
const recipient = operator?.recipient ?? spawnSync('age-keygen', ['-y', join(dir, 'operator.key')], {encoding: 'utf8'}).stdout.trim();
await writeProject(dir, fixtureSettings(dir, fx), {nodeRecipients: [recipient]});
if (!existsSync(join(dir, 'nodes', node))) {
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'psy.js'), 'node', 'new', node, '--mac', '52:54:00:00:00:01'], {
    cwd: dir,
    env: {...process.env, PSY_AGE_IDENTITY: join(dir, 'operator.key')},
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`psy node new ${node}: ${r.stderr}`);
}
