import {readdirSync, readFileSync, statSync} from 'node:fs';
import {join, relative} from 'node:path';

/**
 * A project for crash tests: 24 targets over 6 sources, steps that write their outputs
 * in pieces with pauses (so a kill can land while an output is half-written), targets
 * with two outputs, and a directory output.
 */
export function crashProjectFiles(variant: (i: number) => number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < 6; i++) files[`src/s${i}.txt`] = `source ${i} variant ${variant(i)}\n`;
  files['build.config.ts'] = `const n = 24;
const targets = [];
for (let i = 0; i < n; i++) {
  const deps = {};
  if (i >= 3) deps.a = {target: 't' + (i - 3), output: 'main'};
  if (i >= 7) deps.b = {target: 't' + (i - 7)};
  targets.push({
    name: 't' + i,
    inputs: {src: 'src/s' + (i % 6) + '.txt', ...deps},
    outputs: i % 5 === 0 ? {main: 't' + i + '.out', side: 'side/t' + i + '.txt'} : {main: 't' + i + '.out'},
    command: i % 5 === 0
      ? 'printf "head\\\\n" > $out_main; sleep 0.02; cat $in | md5sum >> $out_main; sleep 0.01; cat $in | sha1sum > $out_side'
      : 'printf "begin\\\\n" > $out; sleep 0.0' + (i % 4) + '; cat $in | md5sum >> $out; printf "end\\\\n" >> $out',
  });
}
targets.push({
  name: 'tree',
  inputs: {x: {target: 't20', output: 'main'}, y: {target: 't21'}},
  outputs: {dir: {dir: 'tree'}},
  command: 'mkdir -p $out/sub && cp $in_x $out/x && sleep 0.02 && cp $in_y $out/sub/y',
});
export default {targets};
`;
  return files;
}

/** Every file under a folder (relative path → contents), skipping temporaries. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      if (name === '.psy-tmp') continue;
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = readFileSync(p, 'latin1');
    }
  };
  walk(dir);
  return out;
}

/** Deterministic pseudo-random numbers in [0, 1). */
export function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
