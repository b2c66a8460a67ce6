// Runs `psy publish` (the library path the CLI uses, from dist/) and kills itself with
// SIGKILL right after the Nth durable step, like a power cut or an OOM kill.
// Usage: node deaddrop-crash-child.mjs PROJECT_DIR N   (N = 0: run to the end)
// Prints each step on stdout as it is reached.
import {publishProject} from '../../dist/deaddrop/publish-project.js';

const [cwd, n] = process.argv.slice(2);
const crashAt = Number(n);
let count = 0;
await publishProject({
  cwd,
  env: process.env,
  log: () => undefined,
  warn: () => undefined,
  onStep: (step) => {
    count++;
    process.stdout.write(`${count} ${step}\n`);
    if (count === crashAt) process.kill(process.pid, 'SIGKILL');
  },
});
process.stdout.write('done\n');
