#!/usr/bin/env bash
# LinUCB step benchmark (issue 6, target 2), not part of the tests: LaserCore's LinUCB (Float32
# Cholesky, 2 threads and 1), the old Float64 Sherman-Morrison code, and numpy Sherman-Morrison
# (float32 and float64) on the same contexts, in one invocation. Prints both tables, then one JSON
# object on the last line with every figure, numpy's time over ours, and how often the
# implementations chose the same arm.
#
#   bench/bandit.sh                                   # d = 384,1024,4096, 50 steps (old code: 5 at 4096)
#   bench/bandit.sh --dims 384,1024 --steps 30
set -euo pipefail
cd "$(dirname "$0")/.."
dims=384,1024,4096
steps=50
while [ $# -gt 0 ]; do
  case "$1" in
    --dims) dims=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "usage: bench/bandit.sh [--dims 384,1024,4096] [--steps 50]" >&2; exit 2 ;;
  esac
done
swift build -c release --product laser-bench >&2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
.build/release/laser-bench bandit --dims "$dims" --steps "$steps" | tee "$out/swift.txt"
echo
python3 bench/bandit_numpy.py --dims "$dims" --steps "$steps" | tee "$out/numpy.txt"
python3 - "$out/swift.txt" "$out/numpy.txt" <<'EOF'
import json, sys
swift = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
peer = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])

def agree(a, b):
    n = min(len(a), len(b))
    return sum(x == y for x, y in zip(a[:n], b[:n])) / n if n else None

combined = []
for row in swift["results"]:
    d = row["d"]
    ours = row["float32_cholesky_2t"]
    entry = {"d": d, "ours_ms_per_step": ours["ms_per_step"], "ours_1t_ms_per_step": row["float32_cholesky_1t"]["ms_per_step"],
             "dense_float64_baseline_ms_per_step": row["dense_float64_baseline"]["ms_per_step"]}
    for r in peer["results"]:
        if r["d"] == d:
            name = f"numpy_{r['dtype']}_{r['rank1']}"
            entry[f"{name}_ms_per_step"] = r["ms_per_step"]
            entry[f"{name}_over_ours"] = r["ms_per_step"] / ours["ms_per_step"]
            entry[f"same_choices_ours_vs_{name}"] = agree(ours["choices"], r["choices"])
    entry["same_choices_ours_vs_dense_float64_baseline"] = agree(ours["choices"], row["dense_float64_baseline"]["choices"])
    combined.append(entry)
print("\nsummary (ms per select + update step, medians):")
for e in combined:
    peers = ", ".join(f"{k[6:-12]} {v:.3f}" for k, v in e.items() if k.startswith("numpy_") and k.endswith("_ms_per_step"))
    print(f"d = {e['d']}: ours {e['ours_ms_per_step']:.3f} (1 thread {e['ours_1t_ms_per_step']:.3f}), "
          f"old Float64 {e['dense_float64_baseline_ms_per_step']:.3f}; numpy {peers}")
print(json.dumps({"benchmark": "bandit_combined", "summary": combined, "laser_bench": swift, "numpy": peer}, sort_keys=True))
EOF
