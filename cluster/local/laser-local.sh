#!/usr/bin/env bash
# A small supervisor for one machine: the coordinator and N workers as separate processes.
#   - a worker that dies (crash, kill, OOM) is started again; one that ends normally (the run is over)
#     or is rejected by the coordinator is not;
#   - a coordinator killed by a signal is started again with --resume (same output as no crash);
#   - Ctrl-C (or SIGTERM) stops everything it started;
#   - it exits with the coordinator's exit status when the run is over.
#
#   cluster/local/laser-local.sh CONFIG [--out RUN_DIR] [--workers N] [options]
#   cluster/local/laser-local.sh --resume RUN_DIR [--workers N] [options]
#
# Options:
#   --workers N       worker processes (default 2)
#   --gpus LIST       comma-separated GPU indices, one worker each (CUDA_VISIBLE_DEVICES); overrides --workers
#   --port P          coordinator port (default 5555); workers connect to 127.0.0.1:P
#   --bind ENDPOINT   coordinator endpoint (default tcp://127.0.0.1:P; tcp://0.0.0.0:P lets other hosts join)
#   --slots S         slots per worker (default 2)
#   --rm NAME         an RM every local worker serves (repeatable; default all)
#   --rm-config FILE  the workers' own RM definitions (laser worker --rm-config; subprocess and http RMs
#                     run only from it). Default: the config the coordinator reads (CONFIG, or
#                     RUN_DIR/config.yaml with --resume)
#   --restarts K      restarts per worker and of the coordinator (default 5)
#   --laser BIN       the laser executable (default: laser on PATH, else .build/release/laser)
#   --logs DIR        process logs (default RUN_DIR/supervisor)
# More workers can join at any time from anywhere: laser worker --connect tcp://HOST:P --id NAME
set -uo pipefail

workers=2 gpus="" port=5555 bind="" slots=2 restarts=5 config="" out="" resume="" logs="" rm_config="" rms=()
laser=$(command -v laser || true)
[ -n "$laser" ] || laser="$(cd "$(dirname "$0")/../.." && pwd)/.build/release/laser"
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=$2; shift 2;;
    --gpus) gpus=$2; shift 2;;
    --port) port=$2; shift 2;;
    --bind) bind=$2; shift 2;;
    --slots) slots=$2; shift 2;;
    --rm) rms+=(--rm "$2"); shift 2;;
    --rm-config) rm_config=$2; shift 2;;
    --restarts) restarts=$2; shift 2;;
    --laser) laser=$2; shift 2;;
    --out) out=$2; shift 2;;
    --resume) resume=$2; shift 2;;
    --logs) logs=$2; shift 2;;
    -h|--help) sed -n '2,25p' "$0"; exit 0;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2;;
    *) config=$1; shift;;
  esac
done
[ -x "$laser" ] || { echo "no laser executable at '$laser' (build with swift build -c release, or pass --laser)" >&2; exit 2; }
[ -n "$config" ] || [ -n "$resume" ] || { echo "give a CONFIG or --resume RUN_DIR (see --help)" >&2; exit 2; }
[ -z "$resume" ] || [ -z "$out" ] || { echo "--resume names the run directory; it does not go with --out" >&2; exit 2; }
run_dir=${resume:-${out:-runs/local-$(date +%Y%m%d-%H%M%S)}}
bind=${bind:-tcp://127.0.0.1:$port}
logs=${logs:-$run_dir/supervisor}
# Workers build subprocess and http RMs only from their own definitions (--rm-config), never from what
# the coordinator sends: by default they get the config the coordinator reads.
if [ -z "$rm_config" ]; then
  if [ -n "$resume" ]; then rm_config=$run_dir/config.yaml; else rm_config=$config; fi
fi
[ -f "$rm_config" ] || { echo "no RM definitions for the workers at '$rm_config' (--rm-config)" >&2; exit 2; }
mkdir -p "$logs"
if [ -n "$gpus" ]; then IFS=, read -r -a gpu_list <<< "$gpus"; else gpu_list=(); for ((i = 0; i < workers; i++)); do gpu_list+=(""); done; fi

say() { echo "laser-local [$(date +%H:%M:%S)] $*"; }

coordinator_pid="" coordinator_starts=0
start_coordinator() {
  local args
  if [ -s "$run_dir/journal" ] && [ -f "$run_dir/config.yaml" ]; then
    args=(coordinator --resume "$run_dir" --bind "$bind")
    say "coordinator: resuming $run_dir"
  else
    [ -n "$config" ] || { say "$run_dir has no journal to resume"; exit 2; }
    # A journal without config.yaml: the last start stopped before it could bind; nothing was scored.
    if [ -e "$run_dir/journal" ]; then mv "$run_dir/journal" "$run_dir/journal.incomplete-$(date +%s)"; fi
    args=(coordinator "$config" --out "$run_dir" --bind "$bind")
    say "coordinator: new run in $run_dir"
  fi
  "$laser" "${args[@]}" >>"$logs/coordinator.log" 2>&1 &
  coordinator_pid=$!
  coordinator_starts=$((coordinator_starts + 1))
}

declare -a worker_pid worker_starts worker_done
start_worker() { # index
  local i=$1 gpu=${gpu_list[$1]} id
  id="$(hostname -s)-local$i"
  if [ -n "$gpu" ]; then
    CUDA_VISIBLE_DEVICES=$gpu "$laser" worker --connect "tcp://127.0.0.1:$port" --id "$id" --slots "$slots" --rm-config "$rm_config" "${rms[@]}" >>"$logs/worker-$i.log" 2>&1 &
  else
    "$laser" worker --connect "tcp://127.0.0.1:$port" --id "$id" --slots "$slots" --rm-config "$rm_config" "${rms[@]}" >>"$logs/worker-$i.log" 2>&1 &
  fi
  worker_pid[i]=$!
  worker_starts[i]=$((${worker_starts[i]:-0} + 1))
  say "worker $id started (pid ${worker_pid[i]}${gpu:+, GPU $gpu})"
}

stop_all() {
  local pids=() p
  [ -n "$coordinator_pid" ] && pids+=("$coordinator_pid")
  for p in "${worker_pid[@]}"; do [ -n "$p" ] && pids+=("$p"); done
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null
  for _ in $(seq 1 20); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.25
  done
  kill -KILL "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
}
trap 'say "stopping everything (signal)"; stop_all; exit 130' INT TERM

start_coordinator
for i in "${!gpu_list[@]}"; do worker_done[i]=0; start_worker "$i"; done

while true; do
  sleep 0.5
  if ! kill -0 "$coordinator_pid" 2>/dev/null; then
    wait "$coordinator_pid"; code=$?
    if [ "$code" -gt 128 ] && [ "$coordinator_starts" -le "$restarts" ]; then
      say "coordinator died (signal $((code - 128))); starting it again with --resume"
      start_coordinator
      continue
    fi
    if [ "$code" = 0 ]; then say "the run is complete: $run_dir"; else say "coordinator exited with $code (log: $logs/coordinator.log)"; fi
    # Workers got Shutdown and end by themselves; stop what is left after a moment.
    for _ in $(seq 1 20); do
      alive=0; for p in "${worker_pid[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ $alive = 0 ] && break; sleep 0.25
    done
    coordinator_pid=""; stop_all
    exit "$code"
  fi
  for i in "${!gpu_list[@]}"; do
    [ "${worker_done[i]}" = 1 ] && continue
    kill -0 "${worker_pid[i]}" 2>/dev/null && continue
    wait "${worker_pid[i]}"; code=$?
    if [ "$code" -lt 128 ]; then
      # 0: the run is over; 1-7, 64: rejected, gave up, or a bad flag, key or RM definition (see its log;
      # docs/user-guide.md#exit-status). Starting it again would not help.
      worker_done[i]=1
      [ "$code" = 0 ] || say "worker $i exited with $code (log: $logs/worker-$i.log); not restarting it"
    elif [ "${worker_starts[i]}" -le "$restarts" ]; then
      say "worker $i died (exit $code); starting it again"
      start_worker "$i"
    else
      worker_done[i]=1
      say "worker $i died ${worker_starts[i]} times; not starting it again"
    fi
  done
done
