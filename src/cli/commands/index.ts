import {registerCommand} from '../psy.js';

// One line per command; the module is imported only when the command runs.
registerCommand('version', async () => (await import('./version.js')).command);
registerCommand('build', async () => (await import('./build.js')).command);
