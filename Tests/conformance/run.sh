#!/usr/bin/env bash
# Conformance of the wire contract (issue 14): a minimal worker written in Python from proto/laser.proto
# and docs/protocol.md alone drives a real coordinator to the same batch files as laser's own worker.
# Needs the debug build (swift build) or LASER_BIN, protoc, pyzmq, protobuf and pytest (the Python
# `regex` module for the non-ASCII test). pytest's exit 5 (no tests ran) is a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 -m pytest -q -p no:cacheprovider Tests/conformance "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "Tests/conformance: no tests ran" >&2; exit 1; fi
exit $rc
