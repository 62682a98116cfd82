#!/usr/bin/env bash
# The main job on the built-in default: installs what is missing, builds laser (release), and runs
# the demo LASeR job (coordinator + 3 local worker processes over ZeroMQ) into ./runs/.
# Extra arguments go to `laser run` (for example --compare, or a config file).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/install-deps.sh"
swift build -c release --package-path "$root" >&2
exec "$root/.build/release/laser" run "$@"
