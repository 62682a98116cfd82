#!/usr/bin/env bash
# laser's own cost per candidate against bare libzmq (bench/throughput.py; docs/performance.md).
#   bench/throughput.sh                      # 100,000 prompts x 8 x 1 KiB, 2 workers, 3 repeats
#   bench/throughput.sh --prompts 20000 --repeats 1
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product laser >&2
mkdir -p .build/bench
gcc -O2 -o .build/bench/zmq_baseline bench/zmq_baseline.c -lzmq
exec python3 bench/throughput.py --laser .build/release/laser --baseline .build/bench/zmq_baseline "$@"
