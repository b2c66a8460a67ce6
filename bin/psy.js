#!/usr/bin/env node
import {main} from '../dist/cli/psy.js';
process.exitCode = await main(process.argv.slice(2));
