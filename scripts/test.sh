#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the whole test suite (unit,
# privileged integration, end to end in the simulated cluster), after
# building the container image.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
npm ci --no-audit --no-fund
# The image the e2e test runs agents from (cached: a rebuild fetches no Debian package).
npm run image
npm test
