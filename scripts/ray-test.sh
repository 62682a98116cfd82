#!/usr/bin/env bash
# The Ray launcher (cluster/ray/laser_ray.py) on a real, local Ray cluster: `ray start --head` on
# 127.0.0.1 only, a run of 2 worker actors in a placement group, one worker actor killed mid-run
# (ray.kill with restarts allowed: Ray restarts it, and its new laser worker takes the old one's id),
# and the batch files compared byte for byte with `laser run` of the same config.
# Also a run with --rm-capacity 1 (dynamic placement) on the same cluster, compared the same way.
# Installs ray into .venv-ray the first time (LASER_RAY_VENV to put it elsewhere; prints the time).
#   scripts/ray-test.sh [path/to/laser]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
laser="${1:-$root/.build/debug/laser}"
venv="${LASER_RAY_VENV:-$root/.venv-ray}"
ray_version=2.52.0
if ! { [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import ray; assert ray.__version__ == '$ray_version'" 2>/dev/null; }; then
  start=$(date +%s)
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "ray==$ray_version" 2>&1 | grep -v "Running pip as the 'root' user" || true
  echo "ray-test: installed ray $ray_version into $venv in $(( $(date +%s) - start )) s"
fi
# Ray's GCS and raylet listen on every interface whatever --node-ip-address says: run the cluster in a
# network namespace of its own with only loopback, so nothing outside this machine (or this test) can
# reach it. Where namespaces are not allowed, it runs on the host, bound to all interfaces (said below).
if [ -z "${LASER_RAY_IN_NETNS:-}" ] && command -v unshare >/dev/null && command -v ip >/dev/null \
  && unshare -n true 2>/dev/null; then
  exec unshare -n env LASER_RAY_IN_NETNS=1 LASER_RAY_VENV="$venv" bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
if [ -n "${LASER_RAY_IN_NETNS:-}" ]; then
  echo "ray-test: in a network namespace of its own (loopback only: $(ip -brief addr | tr -s ' ' | tr '\n' ';'))"
else
  echo "ray-test: WARNING: no network namespace (unshare -n not allowed here); Ray listens on all interfaces of this host"
fi
work=$(mktemp -d /tmp/laser-ray-test.XXXXXX)
export RAY_USAGE_STATS_ENABLED=0 RAY_TMPDIR="$work/ray-tmp"
mkdir -p "$RAY_TMPDIR"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  "$venv/bin/ray" stop --force >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "ray-test: ray start --head on 127.0.0.1:$port"
"$venv/bin/ray" start --head --node-ip-address=127.0.0.1 --port="$port" --num-cpus=8 --num-gpus=0 \
  --include-dashboard=false --disable-usage-stats --temp-dir="$RAY_TMPDIR" >"$work/ray-start.log" 2>&1 \
  || { cat "$work/ray-start.log"; exit 1; }
address="127.0.0.1:$port"

"$laser" demo-data --out "$work/data" --iterations 2 --prompts-per-task 16 >/dev/null
cat >"$work/config.yaml" <<EOF
input: [$work/data/input/iteration-1.jsonl, $work/data/input/iteration-2.jsonl]
seed: 4
strategy: linucb
batch_size: 8
shard_size: 2
pipeline_depth: 2
reward_models:
  - {name: answer-match, kind: simulated-load, params: {base: answer-match, ms: 40, load_ms: 200}}
  - {name: self-consistency, kind: simulated-load, params: {base: self-consistency, ms: 40, load_ms: 200}}
  - {name: arithmetic-check, kind: simulated-load, params: {base: arithmetic-check, ms: 40, load_ms: 200}}
network: {heartbeat_ms: 200, liveness: 10, lease_ms: 20000}
workers: {local: 2, slots: 1}
placement: {dynamic: {min_residency_s: 0.2, assumed_load_s: 0.2}}
EOF
"$laser" run "$work/config.yaml" --out "$work/reference" --no-progress >"$work/reference.log" 2>&1 \
  || { tail -20 "$work/reference.log"; exit 1; }

compare() {  # the batch files and selections of two run directories, byte for byte
  (cd "$1" && find iterations -type f | sort) >"$work/a.list"
  (cd "$2" && find iterations -type f | sort) >"$work/b.list"
  cmp -s "$work/a.list" "$work/b.list" || { echo "ray-test: different batch files in $2"; diff "$work/a.list" "$work/b.list" | head; return 1; }
  [ -s "$work/a.list" ] || { echo "ray-test: no batch files"; return 1; }
  while read -r f; do cmp -s "$1/$f" "$2/$f" || { echo "ray-test: $f differs"; return 1; }; done <"$work/a.list"
  cmp -s "$1/selections.jsonl" "$2/selections.jsonl" || { echo "ray-test: selections.jsonl differs"; return 1; }
}

run_ray() {  # $1: run directory name, $2: --rm-capacity, $3: kill a worker actor mid-run (yes/no)
  local out="$work/$1"
  "$venv/bin/python" "$root/cluster/ray/laser_ray.py" --address "$address" --namespace "laser-$1" \
    --laser "$laser" --config "$work/config.yaml" --out "$out" --workers 2 --slots 1 --rm-capacity "$2" \
    --timeout 240 >"$work/$1.json" 2>"$work/$1.log" &
  local driver=$!
  if [ "$3" = yes ]; then
    # Once the run has emitted its first batches, kill worker actor 1 the way a node failure or an
    # operator would; Ray restarts it (max_restarts -1).
    for _ in $(seq 1 600); do
      [ -n "$(find "$out/iterations" -name '*.jsonl' 2>/dev/null | head -1)" ] && break
      sleep 0.1
    done
    "$venv/bin/python" - "$address" "laser-$1" <<'PY'
import sys, ray
ray.init(address=sys.argv[1], namespace=sys.argv[2], log_to_driver=False)
actor = ray.get_actor("laser-worker-1")
before = ray.get(actor.info.remote())
ray.kill(actor, no_restart=False)
print(f"ray-test: killed worker actor 1 (actor pid {before['actor_pid']}, laser worker pid {before['pid']})", flush=True)
PY
  fi
  local rc=0
  wait "$driver" || rc=$?
  if [ $rc -ne 0 ]; then echo "ray-test: laser_ray.py exited $rc"; tail -30 "$work/$1.log"; tail -30 "$out.ray-logs"/*.log 2>/dev/null; return 1; fi
  compare "$work/reference" "$out"
}

run_ray static 0 yes
python3 - "$work/static.json" <<'PY'
import json, sys
line = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
w1 = next(w for w in line["workers"] if w["worker"] == "ray-worker-1")
assert line["coordinator_exit"] == 0, line
assert w1.get("restarted") is True and w1["restarts_seen"] >= 1, f"worker 1 was not restarted by Ray: {w1}"
print(f"ray-test: killed worker actor restarted by Ray (restarts seen {w1['restarts_seen']}); batch files identical to laser run")
PY
run_ray dynamic 1 no
python3 - "$work/dynamic/summary.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["counters"]
assert c["rm_loads"] >= 1, c
print(f"ray-test: dynamic placement on Ray ({c['rm_loads']} loads, {c['rm_reloads']} reloads); batch files identical to laser run")
PY
echo "ray-test: passed"
