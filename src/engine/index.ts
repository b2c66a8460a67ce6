/**
 * The engine's public surface for other parts of psy (publish, watch mode, tests).
 * Config modules import `defineConfig` from './config.js' and rules `defineRule` from
 * './rule.js' directly, so that loading a config never pulls in the engine itself.
 */
export {build, type BuildOptions, type BuildResult} from './build.js';
export {defineConfig, defineTarget, type InputSource, type InputSpec, type OutputSpec, type PsyConfig, type TargetConfig} from './config.js';
export {type BuildEvent, type BuildLogger, silentLogger} from './events.js';
export {analyze, closure, type Graph, type GraphTarget} from './graph.js';
export {clean, explain, openProject, queryTarget, type Explanation, type TargetInfo} from './inspect.js';
export {loadConfig, type LoadConfigOptions, type LoadedConfig} from './load-config.js';
export {defineRule, type Rule, type RuleContext, type ToolSpec} from './rule.js';
