import {clean} from '../../engine/inspect.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

export const command: Command = {
  name: 'clean',
  summary: 'remove outputs (of the named targets, or all)',
  help: `Usage: psy clean [--json] [--config FILE] [TARGET...]

Removes the outputs of the named targets (default: every target) and forgets their
build records, so they rebuild next time. Upstream targets are left alone.`,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('clean', argv, {json: {type: 'boolean'}, config: {type: 'string'}});
    const r = await clean({cwd: io.cwd, configPath: values.config, targets: positionals});
    if (values.json === true) writeLine(io.stdout, JSON.stringify(r));
    else writeLine(io.stdout, `psy clean: removed ${r.removed.length} output${r.removed.length === 1 ? '' : 's'}`);
    return 0;
  },
};
