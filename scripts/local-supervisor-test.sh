#!/usr/bin/env bash
# Tests cluster/local/laser-local.sh with real processes on loopback:
#   1. a run with 2 workers; mid-run one worker and then the coordinator are SIGKILLed: the
#      supervisor starts the worker again and the coordinator with --resume; the run completes with
#      the same batch files as `laser run`;
#   2. Ctrl-C (SIGINT) to the supervisor mid-run stops every process it started.
#
#   scripts/local-supervisor-test.sh [LASER_BINARY]       (default .build/debug/laser)
set -uo pipefail
cd "$(dirname "$0")/.."
LASER=$(realpath "${1:-${LASER_BIN:-.build/debug/laser}}")
[ -x "$LASER" ] || { echo "no laser binary at $LASER (build first)"; exit 2; }
work=$(mktemp -d /tmp/laser-local.XXXXXX)
sup=""
cleanup() { [ -n "$sup" ] && kill -9 "$sup" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
log() { echo "local-supervisor-test [$(date +%H:%M:%S)] $*"; }
fail() { echo "FAIL local supervisor test: $*"; for f in "$work"/supervisor*.out; do echo "----- $f"; tail -n 30 "$f"; done; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pid_of() { # a laser process of this test whose command line contains $1
  pgrep -f -- "$1" | while read -r p; do [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$LASER" ] && echo "$p"; done | head -n 1
}

"$LASER" demo-data --out "$work/data" --iterations 2 --prompts-per-task 16 >/dev/null || fail "demo-data"
write_config() { # file, ms
  {
    echo "input: [$work/data/input/iteration-1.jsonl, $work/data/input/iteration-2.jsonl]"
    echo "seed: 4"
    echo "linucb: {alpha: 2.0}"
    echo "batch_size: 8"
    echo "shard_size: 2"
    echo "context: {dimension: 128}"
    echo "reward_models:"
    for rm in length self-consistency arithmetic-check instruction-following answer-match; do
      echo "  - {name: $rm, kind: simulated-latency, params: {base: $rm, ms: $2}}"
    done
    echo "network: {heartbeat_ms: 200, liveness: 5, lease_ms: 20000}"
  } >"$1"
}
write_config "$work/fast.yaml" 0
write_config "$work/slow.yaml" 50
"$LASER" run "$work/fast.yaml" --out "$work/clean" --no-progress >/dev/null 2>&1 || fail "clean laser run"
batches() { find "$1/iterations" -name '*.jsonl' 2>/dev/null | wc -l; }

# --- 1. kills, restarts, resume ----------------------------------------------------------------
port=$(free_port)
cluster/local/laser-local.sh "$work/slow.yaml" --out "$work/run" --workers 2 --port "$port" --laser "$LASER" >"$work/supervisor1.out" 2>&1 &
sup=$!
for _ in $(seq 1 100); do [ "$(batches "$work/run")" -ge 2 ] && break; sleep 0.1; done
victim=$(pid_of "worker --connect tcp://127.0.0.1:$port --id $(hostname -s)-local0 ")
[ -n "$victim" ] || fail "no worker 0 running"
kill -9 "$victim"
log "SIGKILLed worker 0 after $(batches "$work/run") batch files"
for _ in $(seq 1 50); do grep -q "worker 0 died" "$work/supervisor1.out" && break; sleep 0.1; done
sleep 0.5
victim=$(pid_of "coordinator $work/slow.yaml --out $work/run")
[ -n "$victim" ] || fail "no coordinator running"
kill -9 "$victim"
log "SIGKILLed the coordinator after $(batches "$work/run") batch files"
for _ in $(seq 1 1200); do kill -0 "$sup" 2>/dev/null || break; sleep 0.1; done
kill -0 "$sup" 2>/dev/null && fail "the supervised run did not finish within 120 s"
wait "$sup" || fail "the supervisor exited non-zero"
sup=""
grep -q "worker 0 died (exit 137); starting it again" "$work/supervisor1.out" || fail "worker 0 was not restarted"
grep -q "coordinator died (signal 9); starting it again with --resume" "$work/supervisor1.out" || fail "the coordinator was not restarted"
grep -q "coordinator: resuming $work/run" "$work/supervisor1.out" || fail "the coordinator did not resume"
want=$(cd "$work/clean/iterations" && find . -name '*.jsonl' | sort)
got=$(cd "$work/run/iterations" && find . -name '*.jsonl' | sort)
[ "$got" = "$want" ] || fail "batch files differ in number"
for f in $want; do cmp -s "$work/clean/iterations/$f" "$work/run/iterations/$f" || fail "$f differs from laser run's"; done
log "worker and coordinator killed, restarted, resumed: $(echo "$want" | wc -l) batch files identical to laser run"

# --- 2. Ctrl-C stops everything ------------------------------------------------------------------
port=$(free_port)
# Job control on, so the background supervisor does not start with SIGINT ignored (as bash does for
# background jobs of a script), like a supervisor run from a terminal.
set -m
cluster/local/laser-local.sh "$work/slow.yaml" --out "$work/run2" --workers 3 --port "$port" --laser "$LASER" >"$work/supervisor2.out" 2>&1 &
sup=$!
for _ in $(seq 1 100); do [ "$(batches "$work/run2")" -ge 1 ] && break; sleep 0.1; done
children=$(pgrep -f -- "tcp://127.0.0.1:$port" | while read -r p; do [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$LASER" ] && echo "$p"; done)
[ "$(echo "$children" | wc -w)" = 4 ] || fail "expected 4 processes (coordinator + 3 workers), found: $children"
kill -INT "$sup"
for _ in $(seq 1 50); do kill -0 "$sup" 2>/dev/null || break; sleep 0.1; done
kill -0 "$sup" 2>/dev/null && fail "the supervisor did not stop on SIGINT"
sup=""
for p in $children; do kill -0 "$p" 2>/dev/null && fail "process $p is still running after Ctrl-C"; done
log "Ctrl-C stopped the supervisor and all 4 processes it started"
echo "local supervisor test passed"
