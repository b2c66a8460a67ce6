import * as fs from 'node:fs';
import {afterEach, describe, expect, it} from 'vitest';
import {loadConfig} from '../src/engine/load-config.js';
import {Rig} from './helpers/engine-rig.js';

// The files a config reads while it is evaluated are noted (the no-op fast path and
// watch mode re-evaluate it when they change), without patching node:fs for the process.

let rig: Rig;
afterEach(() => {
  rig?.cleanup();
  delete (globalThis as {psyConfigSaw?: unknown}).psyConfigSaw;
});

describe('files read by the config', () => {
  it("are noted through the config's own node:fs imports, and the process's node:fs stays as it is", async () => {
    rig = new Rig();
    rig.write({
      'names.json': '["a"]',
      'more.json': '["b"]',
      'lib/list.ts': `import fs from 'fs';
import {existsSync} from 'node:fs';
export const more = (): string[] => (existsSync(new URL('../more.json', import.meta.url)) ? JSON.parse(fs.readFileSync(new URL('../more.json', import.meta.url), 'utf8')) : []);
`,
      'build.config.ts': `import * as fs from 'node:fs';
import {more} from './lib/list.js';
(globalThis as {psyConfigSaw?: unknown}).psyConfigSaw = process.getBuiltinModule('node:fs').readFileSync;
const names: string[] = [...JSON.parse(fs.readFileSync(new URL('./names.json', import.meta.url), 'utf8')), ...more()];
export default {targets: names.map((n) => ({name: n, outputs: {o: n}, command: 'touch $out'}))};
`,
    });
    const loaded = await loadConfig({cwd: rig.dir});
    expect(loaded.config.targets.map((t) => (t as {name: string}).name)).toEqual(['a', 'b']);
    expect([...new Set(loaded.readFiles)].sort()).toEqual([rig.path('more.json'), rig.path('names.json')]);
    // What the rest of the process calls was never replaced, not even while evaluating.
    expect((globalThis as {psyConfigSaw?: unknown}).psyConfigSaw).toBe(fs.readFileSync);
    // Reads after the evaluation (a rule at build time) are not the config's.
    const {more} = (await import(`${rig.path('cache/config/mod')}/${fs.readdirSync(rig.path('cache/config/mod')).find((f) => f.endsWith('-list.mjs'))!}`)) as {
      more(): string[];
    };
    expect(more()).toEqual(['b']);
    expect([...new Set(loaded.readFiles)]).toHaveLength(2);
  });
});
