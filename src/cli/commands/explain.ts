import {explain} from '../../engine/inspect.js';
import {PsyError} from '../../errors.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

export const command: Command = {
  name: 'explain',
  summary: 'say why a target would rebuild',
  help: `Usage: psy explain [--json] [--config FILE] TARGET

Prints the first reason TARGET is stale ("never built", "output X missing", "input X
changed", "rule R changed", "tool T 4.5 → 4.6", "parameters changed", ...), following
stale upstream targets down to the root cause, or that it is up to date. It is the
verdict of \`psy build -n TARGET\`: the two always agree, for groups too.

Options:
  --json         print the explanation as JSON
  --config FILE  use FILE instead of build.config.ts

Exit status: 0 answered (stale or not), 1 failure (unknown target, bad config), 2 usage error.`,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('explain', argv, {
      json: {type: 'boolean'},
      config: {type: 'string'},
    });
    if (positionals.length !== 1) throw new PsyError('usage', 'explain needs exactly one TARGET (see psy explain --help)');
    const e = await explain({cwd: io.cwd, configPath: values.config, target: positionals[0]!, warn: (m) => writeLine(io.stderr, `psy: warning: ${m}`)});
    if (values.json === true) {
      writeLine(io.stdout, JSON.stringify(e));
    } else if (!e.stale) {
      writeLine(io.stdout, `${e.target}: up to date`);
    } else {
      for (const [i, step] of e.chain.entries()) {
        writeLine(io.stdout, `${'  '.repeat(i)}${step.target}: ${step.reason}`);
      }
    }
    return 0;
  },
};
