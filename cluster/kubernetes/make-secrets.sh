#!/usr/bin/env bash
# Makes the CURVE keys for the Kubernetes deployment with `laser keygen` and prints the three
# Secrets the manifests mount, as YAML:
#   laser-coordinator-key   coordinator.key (the coordinator's secret key; security.server_key)
#   laser-allowed-clients   worker.pub (the worker allow-list folder; security.allowed_workers)
#   laser-worker-key        worker.key + coordinator.pub (every worker replica: --key, --server-key)
#
#   cluster/kubernetes/make-secrets.sh KEY_DIR | kubectl apply -f -
#
# KEY_DIR keeps the key files (created if missing; existing keys are reused, never overwritten).
# To give workers separate keys, add more NAME.pub files to laser-allowed-clients and run another
# Deployment with its own Secret.
set -euo pipefail
dir=${1:?usage: make-secrets.sh KEY_DIR [NAMESPACE]}
namespace=${2:-laser}
laser=${LASER_BIN:-laser}
mkdir -p "$dir"
for name in coordinator worker; do
  [ -f "$dir/$name.key" ] || "$laser" keygen --out "$dir" --name "$name" >&2
done
b64() { base64 -w0 < "$1"; }
secret() { # name, then file=key pairs
  local name=$1; shift
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n  labels: {app.kubernetes.io/name: laser}\ntype: Opaque\ndata:\n' "$name" "$namespace"
  for pair in "$@"; do printf '  %s: %s\n' "${pair%%=*}" "$(b64 "${pair#*=}")"; done
}
secret laser-coordinator-key "coordinator.key=$dir/coordinator.key"
secret laser-allowed-clients "worker.pub=$dir/worker.pub"
secret laser-worker-key "worker.key=$dir/worker.key" "coordinator.pub=$dir/coordinator.pub"
