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
swift test --skip-build "$@"
