#!/usr/bin/env bash
# Attacker-side tests of laser's trust boundaries (issue 19, security items of issue 14).
# Runs from the repository root; LASER_BIN overrides the binary (default .build/debug/laser).
# Needs python3 with pytest, pyzmq and protobuf, and protoc on PATH.
set -u
cd "$(dirname "$0")/../.." || exit 2
python3 -m pytest -q -p no:cacheprovider Tests/hostile "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
