// Synthetic build graph for the engine benchmark: N sources and N targets with fan-in K.
// Target i reads source i plus K-1 inputs, each an earlier target (p = 1/2) or a random
// source, and runs `cat inputs | md5sum > out`. The same graph is written as a psy config
// (build.config.ts reading graph.json), build.ninja and a Makefile.
import {mkdirSync, writeFileSync} from 'node:fs';
import {join} from 'node:path';

function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pad = (i) => String(i).padStart(5, '0');

export function generate({dir, targets: n, fanin = 4, seed = 1, size = 2048}) {
  const rand = prng(seed);
  mkdirSync(join(dir, 'src'), {recursive: true});
  for (let i = 0; i < n; i++) {
    let text = '';
    while (text.length < size) text += rand().toString(36).slice(2) + '\n';
    writeFileSync(join(dir, 'src', `s${pad(i)}.txt`), text.slice(0, size));
  }
  const graph = [];
  for (let i = 0; i < n; i++) {
    const srcs = [`src/s${pad(i)}.txt`];
    const deps = [];
    for (let k = 1; k < fanin; k++) {
      if (i > 0 && rand() < 0.5) {
        const d = Math.floor(rand() * i);
        if (!deps.includes(d)) deps.push(d);
      } else {
        const s = `src/s${pad(Math.floor(rand() * n))}.txt`;
        if (!srcs.includes(s)) srcs.push(s);
      }
    }
    graph.push({srcs, deps});
  }
  writeFileSync(join(dir, 'graph.json'), JSON.stringify(graph));
  writeFileSync(
    join(dir, 'build.config.ts'),
    `import {readFileSync} from 'node:fs';

interface Node {
  srcs: string[];
  deps: number[];
}
const graph = JSON.parse(readFileSync(new URL('./graph.json', import.meta.url), 'utf8')) as Node[];
const name = (i: number) => 't' + String(i).padStart(5, '0');

export default {
  outDir: 'out',
  targets: graph.map((node, i) => ({
    name: name(i),
    inputs: {srcs: node.srcs, deps: node.deps.map((d) => ({target: name(d)}))},
    outputs: {out: name(i) + '.out'},
    command: 'cat $in | md5sum > $out',
  })),
};
`,
  );
  const out = (i) => `out/t${pad(i)}.out`;
  const ins = (node) => [...node.srcs, ...node.deps.map(out)].join(' ');
  let ninja = 'rule md5\n  command = cat $in | md5sum > $out\n\n';
  let make = '.PHONY: all\nall:';
  for (let i = 0; i < n; i++) make += ` ${out(i)}`;
  make += '\n\nout:\n\tmkdir -p out\n\n';
  graph.forEach((node, i) => {
    ninja += `build ${out(i)}: md5 ${ins(node)}\n`;
    make += `${out(i)}: ${ins(node)} | out\n\tcat $^ | md5sum > $@\n`;
  });
  writeFileSync(join(dir, 'build.ninja'), ninja);
  writeFileSync(join(dir, 'Makefile'), make.replace(/cat \$\^/g, 'cat $(filter-out out,$^)'));

  // Cones: how many targets each source reaches; pick a narrow (~3) and a ~10% one.
  const dependents = graph.map(() => /** @type {number[]} */ ([]));
  graph.forEach((node, i) => node.deps.forEach((d) => dependents[d].push(i)));
  const users = new Map();
  graph.forEach((node, i) => node.srcs.forEach((s) => users.set(s, [...(users.get(s) ?? []), i])));
  const cone = (src) => {
    const seen = new Set();
    const stack = [...(users.get(src) ?? [])];
    while (stack.length) {
      const t = stack.pop();
      if (seen.has(t)) continue;
      seen.add(t);
      stack.push(...dependents[t]);
    }
    return seen.size;
  };
  let narrow, wide;
  let bestWide = Infinity;
  for (let i = 0; i < n; i++) {
    const s = `src/s${pad(i)}.txt`;
    const c = cone(s);
    if (narrow === undefined && c >= 2 && c <= 4) narrow = {src: s, cone: c};
    const diff = Math.abs(c - n / 10);
    if (diff < bestWide) {
      bestWide = diff;
      wide = {src: s, cone: c};
    }
  }
  narrow ??= {src: `src/s${pad(n - 1)}.txt`, cone: cone(`src/s${pad(n - 1)}.txt`)};
  const meta = {targets: n, fanin, narrow, wide};
  writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta, null, 2));
  return meta;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, n] = process.argv.slice(2);
  console.log(generate({dir, targets: Number(n)}));
}
