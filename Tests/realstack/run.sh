#!/usr/bin/env bash
# The real-stack tests (issue 15): laser against real Hugging Face models (made on the spot, nothing
# downloaded) behind examples/rm-servers/hf_rm_server.py, TRL training through laser, and the
# on-policy loop. Makes or reuses the Python environment first (scripts/ml-env.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/ml-env.sh
venv="${LASER_ML_VENV:-$PWD/.venv-ml}"
"$venv/bin/python" -m pytest -q -p no:cacheprovider -s Tests/realstack "$@"
