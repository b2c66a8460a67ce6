// `node --import ./scripts/register-ts.mjs file.ts`: run a TypeScript script of this
// repository directly (see ts-hooks.mjs).
import {register} from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
