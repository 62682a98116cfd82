#!/usr/bin/env bash
# The test command: installs what is missing, checks the generated protobuf-c code is current,
# builds, and runs every test (unit, seeded simulation, real-process integration).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/generate-proto.sh --check
swift build --build-tests
swift test --skip-build "$@"
