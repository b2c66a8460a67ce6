import {analyze, closure} from '../../engine/graph.js';
import {graphDot, graphJson} from '../../engine/inspect.js';
import {loadConfig} from '../../engine/load-config.js';
import {PsyError} from '../../errors.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

export const command: Command = {
  name: 'graph',
  summary: 'print the target graph (dot or json)',
  help: `Usage: psy graph [--format dot|json] [--config FILE] [TARGET...]

Prints the dependency graph of the named targets (default: all) as Graphviz dot
(default; render with \`psy graph | dot -Tsvg > graph.svg\`) or as JSON.`,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('graph', argv, {
      format: {type: 'string', default: 'dot'},
      json: {type: 'boolean'},
      config: {type: 'string'},
    });
    const format = values.json === true ? 'json' : values.format;
    if (format !== 'dot' && format !== 'json') throw new PsyError('usage', `--format must be dot or json, got "${format}"`);
    const loaded = await loadConfig({cwd: io.cwd, ...(values.config === undefined ? {} : {configPath: values.config})});
    const g = analyze(loaded);
    const want = positionals.length > 0 ? closure(g, positionals) : undefined;
    writeLine(io.stdout, format === 'dot' ? graphDot(g, want) : JSON.stringify(graphJson(g, want)));
    return 0;
  },
};
