#!/usr/bin/env bash
# Sets up everything on a fresh Debian machine, starts the simulated cluster
# with the sample app, and shows a request reaching a Service VIP through the
# node proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run build

sim=bin/sluice-sim
$sim up -f examples/hello-mesh.yaml
echo
$sim status
echo
echo "$ sluice-sim exec demo/client -- curl -s http://10.96.0.10/   (4 times)"
for _ in 1 2 3 4; do
  # The web servers start with their pods; give them a moment on the first try.
  $sim exec demo/client -- curl -s --retry 5 --retry-connrefused --retry-delay 1 http://10.96.0.10/
done
echo
echo "$ sluice-sim ctl node-1 -- maps"
$sim ctl node-1 -- maps
echo
echo "The cluster keeps running. Look around with:"
echo "  bin/sluice-sim exec demo/client -- curl -s http://10.96.0.10/"
echo "  bin/sluice-sim ctl node-1 -- connections"
echo "  bin/sluice-sim status -o json"
echo "and remove it with: bin/sluice-sim down"
