import {writeLine, type Command} from '../command.js';

export const command: Command = {
  name: 'version',
  summary: 'print the psy version',
  help: 'Usage: psy version\n\nPrints the psy version.',
  async run(_argv, io) {
    writeLine(io.stdout, 'psy 0.1.0');
    return 0;
  },
};
