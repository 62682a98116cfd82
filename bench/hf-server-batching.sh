#!/usr/bin/env bash
# Worker throughput against a real transformers RM server, with and without request batching
# (bench/hf_server_batching.py). Builds the release binary and the Python environment if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ml-env.sh >&2
[ -x .build/release/laser ] || swift build -c release --product laser >&2
exec "${LASER_ML_VENV:-$PWD/.venv-ml}/bin/python" bench/hf_server_batching.py "$@"
