#!/usr/bin/env bash
# LASeR vs ensemble cost (issue 6): wall time and RM calls of one iteration with LinUCB (one RM per
# mini-batch) against the score ensemble (all K RMs on every prompt), same worker pool, same input,
# K simulated-latency RMs (a SIMULATION: each sleeps per prompt). bench/ensemble-cost.py --help has
# the method; docs/performance.md#laser-vs-ensemble-cost the measured figures. The last line is JSON.
#
#   bench/ensemble-cost.sh                                  # K = 4, 10 ms, 4 workers x 2 slots, 3 repeats (~40 s)
#   bench/ensemble-cost.sh --laser /path/to/laser --repeats 5   # a binary built elsewhere: no build
#   bench/ensemble-cost.sh --batch-size 16 --pipeline-depth 4   # other options go to the .py
#
# Without --laser it first builds the release binary (swift build -c release --product laser), like
# bench/throughput.sh; with --laser PATH it builds nothing and runs that binary.
exec "$(dirname "$0")/with-laser.sh" bench/ensemble-cost.py "$@"
