#!/usr/bin/env bash
# Horizontal scaling benchmark (not part of the tests): throughput with 1..64 worker processes and
# a mixed fast/slow pool, with the simulated-latency RM (a SIMULATION: it sleeps per prompt).
# Builds the release binary if missing. Options go to bench/scaling.py (--help); the last line is JSON.
#
#   bench/scaling.sh                       # 1,2,4,8,16,32,64 workers, 20 ms, mixed 32x10 + 32x40, 3 repeats
#   bench/scaling.sh --workers 1,4 --repeats 1 --mixed ""
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .build/release/laser ] || swift build -c release --product laser
mkdir -p .build/bench
[ .build/bench/sleep_scale.so -nt bench/sleep_scale.c ] 2>/dev/null \
  || cc -shared -fPIC -O2 -o .build/bench/sleep_scale.so bench/sleep_scale.c -ldl
# 64 workers plus the coordinator keep ~200 file descriptors open in this shell's children.
ulimit -n 4096 2>/dev/null || true
exec python3 bench/scaling.py --laser .build/release/laser --shim .build/bench/sleep_scale.so "$@"
