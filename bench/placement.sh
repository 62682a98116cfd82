#!/usr/bin/env bash
# Dynamic placement (issue 17): static vs dynamic vs unconstrained vs the score ensemble, plus a bandit
# that switches RMs every batch, with K simulated-load RMs (a SIMULATION: each sleeps per prompt and per
# load). bench/placement.py --help has the method; docs/placement.md#measured-benchplacementsh the
# figures. The last line is one JSON object.
#
#   bench/placement.sh                    # full size: 16 workers, 20 ms/prompt, 2 s loads (~3.5 min)
#   bench/placement.sh --quick            # smaller input, 10 ms/prompt, 0.5 s loads (~1 min, < 3 min)
#   bench/placement.sh --laser PATH       # a binary built elsewhere: no build
#
# Without --laser it first builds the release binary (swift build -c release --product laser).
exec "$(dirname "$0")/with-laser.sh" bench/placement.py "$@"
