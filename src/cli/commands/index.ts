import {registerCommand} from '../psy.js';

// One line per command; the module is imported only when the command runs.
registerCommand('version', async () => (await import('./version.js')).command);
registerCommand('build', async () => (await import('./build.js')).command);
registerCommand('explain', async () => (await import('./explain.js')).command);
registerCommand('targets', async () => (await import('./targets.js')).command);
registerCommand('query', async () => (await import('./query.js')).command);
registerCommand('graph', async () => (await import('./graph.js')).command);
registerCommand('clean', async () => (await import('./clean.js')).command);
registerCommand('vm', async () => (await import('./vm.js')).command);
registerCommand('mkinitpatch', async () => (await import('./mkinitpatch.js')).command);
registerCommand('keygen', async () => (await import('./keygen.js')).command);
registerCommand('sign', async () => (await import('./sign.js')).command);
registerCommand('verify', async () => (await import('./verify.js')).command);
registerCommand('publish', async () => (await import('./publish.js')).command);
registerCommand('deaddrop', async () => (await import('./deaddrop.js')).command);
registerCommand('lock', async () => (await import('./lock.js')).command);
registerCommand('node', async () => (await import('./node.js')).command);
registerCommand('psynet', async () => (await import('./psynet.js')).command);
registerCommand('deploy', async () => (await import('./deploy.js')).command);
