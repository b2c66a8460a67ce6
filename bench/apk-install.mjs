#!/usr/bin/env node
// Standalone entry of bench/apk-install.bench.mjs: node bench/apk-install.mjs [--runs N] [--json]
import {run} from './apk-install.bench.mjs';

await run(process.argv.slice(2));
