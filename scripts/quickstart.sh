#!/usr/bin/env bash
# One command from a fresh clone: install the Debian tools and npm packages, build psy,
# then build and boot the offline psyopsOS image (scripts/offline-image.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
npm ci --no-audit --no-fund
npm run build
node --import ./scripts/register-ts.mjs scripts/offline-image.ts "$@"
