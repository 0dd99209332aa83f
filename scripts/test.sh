#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the whole test suite (unit,
# privileged integration, end to end in the simulated cluster).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
npm ci --no-audit --no-fund
npm test
