#!/usr/bin/env node
// Standalone entry of bench/apk-resolve.bench.mjs: node bench/apk-resolve.mjs [--runs N] [--json]
import {run} from './apk-resolve.bench.mjs';

await run(process.argv.slice(2));
