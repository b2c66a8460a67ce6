// `npm run bench`: runs every bench/*.bench.mjs (or only the areas named on the command
// line, e.g. `npm run bench -- engine`). Each area's module exports `run(argv)`.
import {readdirSync} from 'node:fs';
import {dirname} from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const areas = readdirSync(here)
  .filter((f) => f.endsWith('.bench.mjs'))
  .map((f) => f.slice(0, -'.bench.mjs'.length))
  .filter((a) => wanted.length === 0 || wanted.includes(a))
  .sort();
if (areas.length === 0) {
  console.error(`no benchmark matches ${wanted.join(' ')}`);
  process.exit(2);
}
for (const area of areas) {
  console.log(`\n## bench: ${area}\n`);
  const mod = await import(pathToFileURL(`${here}/${area}.bench.mjs`).href);
  await mod.run(process.argv.slice(2));
}
