import {analyze} from '../../engine/graph.js';
import {loadConfig} from '../../engine/load-config.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

export const command: Command = {
  name: 'targets',
  summary: 'list the targets of the config',
  help: `Usage: psy targets [--json] [--config FILE]

Lists every target with its description; default targets are marked with *.`,
  async run(argv, io) {
    const {values} = parseCommandArgs('targets', argv, {json: {type: 'boolean'}, config: {type: 'string'}}, false);
    const loaded = await loadConfig({cwd: io.cwd, ...(values.config === undefined ? {} : {configPath: values.config})});
    const g = analyze(loaded);
    const defaults = new Set(g.defaults);
    const all = defaults.size === g.targets.length;
    if (values.json === true) {
      writeLine(
        io.stdout,
        JSON.stringify(
          g.targets.map((t) => ({
            name: t.name,
            description: t.config.description ?? null,
            default: defaults.has(t.name),
            outputs: t.outputs.map((o) => o.path),
          })),
        ),
      );
      return 0;
    }
    const width = Math.max(0, ...g.targets.map((t) => t.name.length));
    for (const t of g.targets) {
      const mark = !all && defaults.has(t.name) ? '*' : ' ';
      const desc = t.config.description ?? '';
      writeLine(io.stdout, `${mark} ${t.name.padEnd(width)}${desc === '' ? '' : `  ${desc}`}`.trimEnd());
    }
    return 0;
  },
};
