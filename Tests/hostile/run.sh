#!/usr/bin/env bash
# The attacker's side (issue 19, issue 14): Python peers written from proto/ alone against real laser
# processes. Needs the debug build (swift build) or LASER_BIN. pytest's exit 5 (no tests ran) is a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 -m pytest -q -p no:cacheprovider Tests/hostile "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "Tests/hostile: no tests ran" >&2; exit 1; fi
exit $rc
