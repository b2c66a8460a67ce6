import {loadProjectSettings} from '../deaddrop/project.js';
import {parseNodeSettings, type NodeSettings} from './settings.js';
import {NodeStore} from './store.js';
import {PsynetStore} from './psynet.js';

/** What the node, psynet and deploy commands work on: the project's nodes/ and psynet/. */
export interface NodeProject {
  readonly root: string;
  readonly settings: NodeSettings;
  readonly nodes: NodeStore;
  readonly psynet: PsynetStore;
  /** All of the config's settings (deploy's copy mode reads settings.deaddrop). */
  readonly config: Readonly<Record<string, unknown>>;
}

export async function loadNodeProject(cwd: string, configPath: string | undefined): Promise<NodeProject> {
  const project = await loadProjectSettings(cwd, configPath, true);
  const settings = parseNodeSettings(project.settings['nodes']);
  return {
    root: project.root,
    settings,
    nodes: new NodeStore(project.root, settings),
    psynet: new PsynetStore(project.root, settings),
    config: project.settings,
  };
}
