#!/usr/bin/env bash
# The test command: installs what is missing, checks the generated protobuf-c code is current,
# validates the Kubernetes manifests, builds, and runs every test (unit, seeded simulation,
# real-process integration, the cluster launchers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/generate-proto.sh --check
swift build --build-tests
scripts/validate-k8s.sh      # after the build: it also checks the Secrets made with the laser binary
if [ $# -gt 0 ]; then
  swift test --skip-build "$@"
else
  # The cluster tests start daemons, namespaces and dozens of processes: run them after the rest,
  # so their load does not slow the timing-bound tests of other suites (which run in parallel).
  swift test --skip-build --skip ClusterTests
  swift test --skip-build --filter ClusterTests
fi
