import {mkdirSync, mkdtempSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {runTool} from '../../src/tools/run.js';
import type {Rule, RuleContext} from '../../src/engine/rule.js';

/**
 * Runs one rule outside the engine, the way the builder calls it: inputs and params as
 * given, each output a fresh path under a scratch folder (`dir: true` outputs created as
 * folders, as the builder does), tools run with the real programs.
 */
export async function runRule(
  rule: Rule,
  spec: {inputs: Record<string, string[]>; params?: RuleContext['params']; outputs: Record<string, 'file' | 'dir'>; root?: string},
): Promise<{outputs: Record<string, string>; scratch: string}> {
  const scratch = mkdtempSync(join(tmpdir(), `psy-rule-${rule.name}-`));
  const outputs: Record<string, string> = {};
  for (const [name, kind] of Object.entries(spec.outputs)) {
    outputs[name] = join(scratch, 'out', name);
    mkdirSync(kind === 'dir' ? outputs[name] : join(scratch, 'out'), {recursive: true});
  }
  const tmpDir = join(scratch, 'tmp');
  mkdirSync(tmpDir);
  const ctx: RuleContext = {
    target: rule.name,
    root: spec.root ?? scratch,
    inputs: spec.inputs,
    params: spec.params ?? {},
    outputs,
    tmpDir,
    sourceDateEpoch: 1_700_000_000,
    signal: new AbortController().signal,
    log: () => {},
    run: (command, args, options) => runTool(command, args, options),
  };
  await rule.run(ctx);
  return {outputs, scratch};
}
