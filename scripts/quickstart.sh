#!/usr/bin/env bash
# One command from a fresh clone: the Debian tools and npm packages (each only when
# missing or out of date), psy itself, then psyopsOS built from Alpine's mirror and
# booted headless to its boot marker, or, where the mirror cannot be reached, the
# offline test image (scripts/quickstart.ts). Later runs reuse everything unchanged.
#
#   scripts/quickstart.sh [--no-boot]
#
# PSY_NODE_MODULES=DIR links node_modules to an existing, installed folder instead of
# running npm ci (for trying the script on a copy of a working tree).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "quickstart: $*" >&2; }

for arg in "$@"; do
  case "$arg" in
    --no-boot) ;;
    -h | --help)
      sed -n '2,11s/^# \{0,1\}//p' "$0"
      exit 0
      ;;
    *)
      say "unknown option '$arg' (usage: scripts/quickstart.sh [--no-boot])"
      exit 2
      ;;
  esac
done

if ! command -v node >/dev/null || ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  say "psy needs Node.js 20.19 or newer (found: $(node --version 2>/dev/null || echo none)); install it, e.g. from nodejs.org or NodeSource's Debian packages"
  exit 1
fi

scripts/install-deps.sh

if [ -n "${PSY_NODE_MODULES:-}" ] && [ ! -e node_modules ]; then
  ln -s "$PSY_NODE_MODULES" node_modules
fi
if [ -L node_modules ]; then
  echo "npm packages: node_modules links to $(readlink node_modules)"
elif [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "npm packages: up to date"
else
  npm ci --no-audit --no-fund
fi

# psy is rebuilt only when a source of it changed since the last build here
stamp=dist/.quickstart-built
if [ -e "$stamp" ] && [ -z "$(find src scripts bin package.json package-lock.json tsconfig.json tsconfig.build.json node_modules/.package-lock.json -newer "$stamp" -print -quit)" ]; then
  echo "psy: up to date"
else
  echo "psy: npm run build"
  npm run build --silent
  touch "$stamp"
fi

exec node --import ./scripts/register-ts.mjs scripts/quickstart.ts "$@"
