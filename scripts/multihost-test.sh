#!/usr/bin/env bash
# Multi-host test on one machine: the coordinator and each worker in a network namespace of its own
# ("hosts"), joined by veth cables to a bridge that lives in one more namespace (the "switch"), on a
# private subnet that exists only inside these namespaces (10.77.0.0/24). Nothing is added to the
# machine's own network namespace; all traffic stays inside the namespaces made here.
#
#   1. coordinator on host c (10.77.0.1), workers on hosts w1 and w2: the run starts;
#   2. mid-run, w1's cable is pulled (its switch port goes down), and a new host w3 joins with a worker;
#   3. the run completes, with the same batch files as `laser run` of the same config.
# Namespaces and processes are removed on exit, whatever happens.
#
#   scripts/multihost-test.sh [LASER_BINARY]        (default .build/debug/laser)
# Exit 0: passed; 77: skipped (the reason is printed: not root, no `ip`, netns not permitted).
set -uo pipefail
cd "$(dirname "$0")/.."
LASER=$(realpath "${1:-${LASER_BIN:-.build/debug/laser}}")
skip() { echo "SKIP multihost test: $*"; exit 77; }
log() { echo "multihost-test [$(date +%H:%M:%S)] $*"; }
[ -x "$LASER" ] || { echo "no laser binary at $LASER (build first)"; exit 2; }
[ "$(id -u)" = 0 ] || skip "network namespaces need root"
if ! command -v ip >/dev/null; then
  command -v apt-get >/dev/null || skip "no ip command and no apt-get to install iproute2"
  log "installing iproute2"
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2; } >/dev/null 2>&1 \
    || skip "apt-get install iproute2 failed"
fi

tag="lsr$$"
sw="$tag-sw"
namespaces=()
pids=()
work=$(mktemp -d /tmp/laser-multihost.XXXXXX)
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for ns in "${namespaces[@]}"; do
    # Anything still running inside a namespace made here was started here.
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() {
  echo "FAIL multihost test: $*"
  for f in "$work"/*.log; do [ -f "$f" ] && { echo "----- $f (last 25 lines)"; grep -v '^iteration' "$f" | tail -n 25; }; done
  exit 1
}

ip netns add "$sw" 2>"$work/netns.err" || skip "ip netns add is not permitted here: $(cat "$work/netns.err")"
namespaces+=("$sw")
ip -n "$sw" link add br0 type bridge || skip "cannot make a bridge in a network namespace"
ip -n "$sw" link set br0 up
ip -n "$sw" link set lo up
host() { # name, address: a namespace with eth0 cabled to the switch
  local ns="$tag-$1"
  ip netns add "$ns" || fail "ip netns add $ns"
  namespaces+=("$ns")
  ip -n "$sw" link add "port-$1" type veth peer name eth0 netns "$ns" || fail "veth for $1"
  ip -n "$sw" link set "port-$1" master br0 up
  ip -n "$ns" addr add "$2/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
}
host c 10.77.0.1
host w1 10.77.0.11
host w2 10.77.0.12
log "namespaces up: coordinator 10.77.0.1, workers 10.77.0.11 and 10.77.0.12 (bridge in $sw)"

# --- the job: demo data, RMs slowed by simulated-latency (a SIMULATION), so the run lasts seconds --
"$LASER" demo-data --out "$work/data" --iterations 3 --prompts-per-task 16 >/dev/null || fail "demo-data"
write_config() { # file, ms
  {
    echo "input: [$work/data/input/iteration-1.jsonl, $work/data/input/iteration-2.jsonl, $work/data/input/iteration-3.jsonl]"
    echo "seed: 11"
    echo "linucb: {alpha: 2.0}"
    echo "batch_size: 8"
    echo "shard_size: 2"
    echo "context: {dimension: 128}"
    echo "reward_models:"
    for rm in length self-consistency arithmetic-check instruction-following answer-match; do
      echo "  - {name: $rm, kind: simulated-latency, params: {base: $rm, ms: $2}}"
    done
    echo "network: {heartbeat_ms: 200, liveness: 5, lease_ms: 20000}"
    echo "workers: {local: 2, slots: 2}"
  } >"$1"
}
write_config "$work/fast.yaml" 0
write_config "$work/slow.yaml" 40
"$LASER" run "$work/fast.yaml" --out "$work/clean" --no-progress >/dev/null 2>&1 || fail "clean laser run"

in_ns() { local ns="$tag-$1"; shift; ip netns exec "$ns" "$@"; }
in_ns c "$LASER" coordinator "$work/slow.yaml" --bind tcp://10.77.0.1:5555 --out "$work/run" >"$work/coordinator.log" 2>&1 &
coordinator=$!
pids+=("$coordinator")
for w in w1 w2; do
  in_ns "$w" "$LASER" worker --connect tcp://10.77.0.1:5555 --id "host-$w" --give-up-after 30 >"$work/worker-$w.log" 2>&1 &
  pids+=($!)
done
batches() { find "$work/run/iterations" -name '*.jsonl' 2>/dev/null | wc -l; }
for _ in $(seq 1 200); do [ "$(batches)" -ge 3 ] && break; kill -0 "$coordinator" 2>/dev/null || break; sleep 0.1; done
[ "$(batches)" -ge 3 ] || fail "the run did not start across namespaces"
grep -q "worker host-w1 joined" "$work/coordinator.log" && grep -q "worker host-w2 joined" "$work/coordinator.log" \
  || fail "workers did not join from their namespaces"

ip -n "$sw" link set port-w1 down
log "pulled w1's cable after $(batches) batch files"
host w3 10.77.0.13
in_ns w3 "$LASER" worker --connect tcp://10.77.0.1:5555 --id host-w3 --give-up-after 30 >"$work/worker-w3.log" 2>&1 &
pids+=($!)
log "host w3 added with a worker"

for _ in $(seq 1 1200); do kill -0 "$coordinator" 2>/dev/null || break; sleep 0.1; done
kill -0 "$coordinator" 2>/dev/null && fail "the run did not finish within 120 s"
wait "$coordinator" || fail "the coordinator failed"
grep -q "worker host-w1 removed" "$work/coordinator.log" || fail "the coordinator never noticed w1 was cut off"
grep -q "worker host-w3 joined" "$work/coordinator.log" || fail "w3 never joined"
got=$(cd "$work/run/iterations" && find . -name '*.jsonl' | sort)
want=$(cd "$work/clean/iterations" && find . -name '*.jsonl' | sort)
[ "$got" = "$want" ] || fail "batch files differ in number: $(echo "$got" | wc -l) vs $(echo "$want" | wc -l)"
for f in $want; do cmp -s "$work/clean/iterations/$f" "$work/run/iterations/$f" || fail "$f differs from laser run's"; done
log "run complete across namespaces: w1 cut off and removed, w3 joined; $(echo "$want" | wc -l) batch files identical to laser run"
echo "multihost test passed"
