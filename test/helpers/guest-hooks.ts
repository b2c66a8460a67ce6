/**
 * Postboot hooks for tests that boot an image with neuralupgrade (test hooks, named as
 * such: policy a deployment would write for itself). `stateLib` reads the slot state and
 * the repository's latest into shell variables through neuralupgrade itself (its JSON
 * parsed by the root's runtime); `healthHook` marks a trial boot good once the node is up.
 */
export const stateLib = [
  'state() {',
  // through a pipe, as a deployment's hook would read it
  '  neuralupgrade "$@" --json | node -e \'',
  '    const s = JSON.parse(require("fs").readFileSync(0, "utf8"));',
  '    const st = s.status ?? s;',
  '    const other = st.booted === "A" ? "B" : "A";',
  '    const q = (v) => String(v ?? "-").replace(/[^A-Za-z0-9._-]/g, "_");',
  '    console.log(`booted=${q(st.booted)} other=${q(other)} good=${q(st.nextBoot.knownGood)} mine=${q(st.slots[st.booted]?.version)} theirs=${q(st.slots[other]?.version)} latest=${q(s.latest?.os?.version)}`);',
  "  '",
  '}',
].join('\n');

/** A trial boot (booted slot is not the known-good default) that got this far is healthy. */
export const healthHook = [
  '#!/bin/sh',
  '# test hook: mark a trial boot good once the node is up',
  stateLib,
  'eval "$(state status)" || exit 1',
  'echo "PSYOPSOS-CYCLE booted=$booted default=$good version=$mine"',
  // the first boot times the runtime's start on the node (/proc/uptime: 10 ms steps)
  'if [ "$booted" = A ] && [ "$good" = A ]; then',
  '  for i in 1 2 3; do',
  '    t0=$(cut -d" " -f1 /proc/uptime); node -e 0; t1=$(cut -d" " -f1 /proc/uptime)',
  '    neuralupgrade --version >/dev/null; t2=$(cut -d" " -f1 /proc/uptime)',
  '    echo "PSYOPSOS-CYCLE runtime node-e=$(awk "BEGIN{print $t1 - $t0}") neuralupgrade-version=$(awk "BEGIN{print $t2 - $t1}")"',
  '  done',
  'fi',
  'if [ "$booted" != "$good" ]; then',
  '  neuralupgrade mark-good && echo "PSYOPSOS-CYCLE marked-good slot=$booted version=$mine"',
  'fi',
  '',
].join('\n');
