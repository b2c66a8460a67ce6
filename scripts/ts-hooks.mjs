// Module hooks that let scripts and benchmarks import the TypeScript sources directly: `.ts` files
// are transpiled with @swc/core, and `./x.js` specifiers resolve to `./x.ts` when only
// the TypeScript file exists (the sources use NodeNext-style `.js` imports).
import {existsSync, readFileSync} from 'node:fs';
import {fileURLToPath} from 'node:url';
import swc from '@swc/core';

export async function resolve(specifier, context, next) {
  if (specifier.endsWith('.js') && (specifier.startsWith('.') || specifier.startsWith('file:'))) {
    const url = new URL(specifier, context.parentURL);
    if (!existsSync(fileURLToPath(url))) {
      const ts = new URL(url.href.replace(/\.js$/, '.ts'));
      if (existsSync(fileURLToPath(ts))) return next(ts.href, context);
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const source = readFileSync(fileURLToPath(url), 'utf8');
  const {code} = swc.transformSync(source, {
    filename: fileURLToPath(url),
    jsc: {parser: {syntax: 'typescript'}, target: 'es2022'},
    module: {type: 'es6'},
    sourceMaps: 'inline',
  });
  return {format: 'module', source: code, shortCircuit: true};
}
