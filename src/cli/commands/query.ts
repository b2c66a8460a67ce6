import {openProject, queryTarget} from '../../engine/inspect.js';
import {PsyError} from '../../errors.js';
import {parseCommandArgs, writeLine, type Command} from '../command.js';

export const command: Command = {
  name: 'query',
  summary: 'show a target: inputs, outputs, key, last run',
  help: `Usage: psy query [--json] [--config FILE] TARGET

Shows a target's action (command or rule), inputs, parameters, outputs, upstream and
downstream targets, its last successful run (action key, time, duration, output hashes)
and whether it is stale now.`,
  async run(argv, io) {
    const {values, positionals} = parseCommandArgs('query', argv, {json: {type: 'boolean'}, config: {type: 'string'}});
    if (positionals.length !== 1) throw new PsyError('usage', 'query needs exactly one TARGET (see psy query --help)');
    const p = await openProject({cwd: io.cwd, configPath: values.config});
    const info = await queryTarget(p, positionals[0]!);
    if (values.json === true) {
      writeLine(io.stdout, JSON.stringify(info));
      return 0;
    }
    const w = (s: string) => writeLine(io.stdout, s);
    w(`${info.name}:`);
    if (info.description !== undefined) w(`  description: ${info.description}`);
    w(`  ${info.kind}: ${info.action}`);
    if (info.pool !== undefined) w(`  pool: ${info.pool}`);
    w('  inputs:');
    for (const [name, paths] of Object.entries(info.inputs)) w(`    ${name}: ${paths.join(' ')}`);
    if (Object.keys(info.params).length > 0) {
      w('  params:');
      for (const [k, v] of Object.entries(info.params)) w(`    ${k}: ${JSON.stringify(v)}`);
    }
    w('  outputs:');
    for (const [name, o] of Object.entries(info.outputs)) w(`    ${name}: ${o.path}${o.kind === 'dir' ? '/' : ''}`);
    if (info.deps.length > 0) w(`  depends on: ${info.deps.join(' ')}`);
    if (info.dependents.length > 0) w(`  used by: ${info.dependents.join(' ')}`);
    if (info.lastRun === undefined) {
      w('  last run: never');
    } else {
      w(`  key: ${info.lastRun.key}`);
      w(`  last run: ${info.lastRun.start} (${info.lastRun.durationMs} ms)`);
      for (const o of info.lastRun.outputs) w(`    ${o.path} ${o.hash}`);
    }
    w(`  status: ${info.stale === undefined ? 'up to date' : `stale (${info.stale})`}`);
    return 0;
  },
};
