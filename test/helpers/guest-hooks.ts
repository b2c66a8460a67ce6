/**
 * Postboot hooks for tests that boot an image with neuralupgrade (test hooks, named as
 * such: policy a deployment would write for itself). `stateLib` reads the slot state and
 * the repository's latest into shell variables through neuralupgrade itself (its JSON
 * parsed by the root's runtime); `healthHook` marks a trial boot good once the node is up.
 */
export const stateLib = [
  'state() {',
  // through a file: under the Bun stand-in, neuralupgrade's JSON into a pipe stopped with an internal error in its write
  '  neuralupgrade "$@" --json > /tmp/test-hook-state.json || return 1',
  '  node -e \'',
  '    const s = JSON.parse(require("fs").readFileSync("/tmp/test-hook-state.json", "utf8"));',
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
  'if [ "$booted" != "$good" ]; then',
  '  neuralupgrade mark-good && echo "PSYOPSOS-CYCLE marked-good slot=$booted version=$mine"',
  'fi',
  '',
].join('\n');
