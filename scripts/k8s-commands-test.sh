#!/usr/bin/env bash
# Runs the container commands of cluster/kubernetes (coordinator and worker) as they are written in
# the manifests, with a real laser binary on this machine: paths under a temp folder instead of the
# pod's volumes, loopback instead of the Service, no CURVE, and `exit 0` instead of `sleep infinity`.
# Checks: a fresh start runs to completion; a restarted pod resumes from the journal (the finished
# run is left as it is); a journal without config.yaml (a start that died before scoring) is moved
# aside and the run starts fresh.
#
#   scripts/k8s-commands-test.sh [LASER_BINARY]     (needs .build/k8s-venv from validate-k8s.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
laser=$(realpath "${1:-${LASER_BIN:-.build/debug/laser}}")
py=.build/k8s-venv/bin/python
[ -x "$py" ] || scripts/validate-k8s.sh >/dev/null
work=$(mktemp -d /tmp/laser-k8s.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/etc" "$work/var"
ln -s "$laser" "$work/bin/laser"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The commands, with the pod's paths and endpoints replaced.
"$py" - "$work" "$port" <<'PY'
import sys, yaml
work, port = sys.argv[1], sys.argv[2]
def pod(path, kind):
    for d in yaml.safe_load_all(open(path)):
        if d and d["kind"] == kind:
            return d["spec"]["template"]["spec"]
def rewrite(s):
    return (s.replace("/var/lib/laser", work + "/var").replace("/etc/laser/config.yaml", work + "/etc/config.yaml")
             .replace("tcp://0.0.0.0:5555", f"tcp://127.0.0.1:{port}").replace(":5555", f":{port}")
             .replace("exec sleep infinity", "exit 0")
             .replace("--server-key /etc/laser/worker-key/coordinator.pub --key /etc/laser/worker-key/worker.key", "--give-up-after 30"))
c = pod("cluster/kubernetes/coordinator.yaml", "StatefulSet")
open(work + "/init.sh", "w").write(rewrite(c["initContainers"][0]["args"][0]))
open(work + "/coordinator.sh", "w").write(rewrite(c["containers"][0]["args"][0]))
w = pod("cluster/kubernetes/workers.yaml", "Deployment")
open(work + "/worker.sh", "w").write(rewrite(w["containers"][0]["args"][0]))
env = {e["name"]: e.get("value", "") for e in w["containers"][0]["env"]}
open(work + "/worker.env", "w").write(f'export LASER_COORDINATOR=127.0.0.1 LASER_SLOTS={env["LASER_SLOTS"]} LASER_RMS="{env["LASER_RMS"]}"\n')
cfg = yaml.safe_load([d for d in yaml.safe_load_all(open("cluster/kubernetes/configmap.yaml"))][0]["data"]["config.yaml"])
del cfg["security"]
cfg["input"] = [p.replace("/var/lib/laser", work + "/var") for p in cfg["input"]]
yaml.safe_dump(cfg, open(work + "/etc/config.yaml", "w"))
PY
export PATH="$work/bin:$PATH"
sh "$work/init.sh"
sh "$work/init.sh"   # a second start of the pod keeps the data
[ -f "$work/var/data/input/iteration-3.jsonl" ] || { echo "FAIL: the init container wrote no demo data"; exit 1; }
pod() { # one coordinator pod start with two worker pods; prints the coordinator's output
  sh "$work/coordinator.sh" >"$work/coordinator.out" 2>&1 &
  local c=$!
  for i in 1 2; do (. "$work/worker.env"; POD_NAME=laser-worker-$i sh "$work/worker.sh") >"$work/worker-$i.out" 2>&1 & done
  wait "$c" || { echo "FAIL: the coordinator command exited non-zero:"; tail -n 20 "$work/coordinator.out"; exit 1; }
  wait
}
pod
grep -q "the run is complete" "$work/coordinator.out" || { echo "FAIL: fresh start did not complete"; cat "$work/coordinator.out"; exit 1; }
grep -q "the run is over" "$work/worker-1.out" || { echo "FAIL: worker 1 did not end with the run"; cat "$work/worker-1.out"; exit 1; }
sum() { (cd "$work/var/run/iterations" && find . -name '*.jsonl' | sort | xargs cat | cksum); }
first=$(sum)
pod   # the pod restarted after the run: resumes, changes nothing
grep -q "resuming $work/var/run from its journal" "$work/coordinator.out" || { echo "FAIL: a restarted pod did not resume"; cat "$work/coordinator.out"; exit 1; }
[ "$(sum)" = "$first" ] || { echo "FAIL: the resumed finished run changed its batch files"; exit 1; }
# A start that died between the journal's first record and config.yaml.
rm -rf "$work/var/run"; mkdir -p "$work/var/run"; printf 'x' >"$work/var/run/journal"
pod
ls "$work/var/run"/journal.incomplete-* >/dev/null 2>&1 || { echo "FAIL: the incomplete journal was not moved aside"; exit 1; }
[ "$(sum)" = "$first" ] || { echo "FAIL: the fresh run after an incomplete start differs"; exit 1; }
echo "kubernetes commands: fresh start completes, a restarted pod resumes from its journal, an incomplete start is set aside"
