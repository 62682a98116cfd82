#!/usr/bin/env bash
# What pipeline depth D buys: iteration wall time with D = 1, 2, 4 when RM scoring and training both
# take time. Both are SIMULATIONS: RMs wrapped in simulated-latency (RM_MS per prompt) and
# `laser trainer-sim` (STEP_MS per batch, stand-in loss). With D = 1 (the paper's loop) each batch waits
# for the previous batch's training step; with D >= 2 scoring runs ahead, so a batch should take about
# max(scoring, training) instead of their sum.
#   bench/pipeline-depth.sh [RUNS=3] [RM_MS=40] [STEP_MS=80]
# One RM (`length`, fixed), so every batch has pairs and takes a training step; the run's wall time is
# measured around the whole `laser run` (it ends after the last loss), process start-up included.
# Prints a table and, on its last line, one JSON object.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs=${1:-3}; rm_ms=${2:-40}; step_ms=${3:-80}
swift build -c release --package-path "$root" >&2
laser="$root/.build/release/laser"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$laser" demo-data --out "$work/data" --iterations 1 --prompts-per-task 32 >/dev/null   # 96 prompts, 12 batches of 8
config() { # $1 = depth
  {
    echo "input: [$work/data/input/iteration-1.jsonl]"
    echo "seed: 1"
    echo "strategy: fixed"
    echo "fixed_rm: length"
    echo "batch_size: 8"
    echo "shard_size: 2"
    echo "pipeline_depth: $1"
    echo "context: {dimension: 128}"
    echo "reward: {source: trainer-loss}"
    echo "reward_models:"
    for rm in length self-consistency arithmetic-check instruction-following answer-match; do
      echo "  - {name: $rm, kind: simulated-latency, params: {base: $rm, ms: $rm_ms}}"
    done
    echo "workers: {local: 4, slots: 1}"
  } > "$work/d$1.yaml"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A med
for d in 1 2 4; do
  config "$d"
  times=()
  for r in $(seq "$runs"); do
    rm -rf "$work/run-$d-$r"
    start=$(date +%s.%N)
    "$laser" run "$work/d$d.yaml" --out "$work/run-$d-$r" --simulate-trainer "$step_ms" --no-progress >/dev/null
    end=$(date +%s.%N)
    times+=("$(python3 -c "print($end - $start)")")
  done
  med[$d]=$(printf '%s\n' "${times[@]}" | median)
done
batches=12
printf 'pipeline depth  run wall s (median of %d)  per batch ms  speed-up vs D=1\n' "$runs"
for d in 1 2 4; do
  python3 -c "print('%-15s %-25.2f %-13.0f %.2fx' % ('D=$d', ${med[$d]}, ${med[$d]}*1000/$batches, ${med[1]}/${med[$d]}))"
done
echo "(each batch: 4 score tasks of 2 prompts x ${rm_ms} ms on 4 workers = $((2 * rm_ms)) ms of scoring, and a ${step_ms} ms simulated training step)"
python3 -c "import json; print(json.dumps({'benchmark':'pipeline-depth','runs':$runs,'rm_ms_per_prompt':$rm_ms,'trainer_step_ms':$step_ms,'batches':$batches,'wall_s':{'1':${med[1]},'2':${med[2]},'4':${med[4]}},'speedup_vs_d1':{'2':round(${med[1]}/${med[2]},3),'4':round(${med[1]}/${med[4]},3)}}))"
