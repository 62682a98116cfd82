#!/usr/bin/env bash
# Validates the Kubernetes manifests (cluster/kubernetes/*.yaml) against the Kubernetes OpenAPI
# schemas, strictly (unknown fields are errors), with the kubernetes-validate package from PyPI,
# which ships the schemas (no network needed to validate). Installs it once into .build/k8s-venv.
# With a laser binary (LASER_BIN, or .build/debug/laser), also the Secrets make-secrets.sh prints;
# with kubectl, also the kustomization rendered by `kubectl kustomize`.
#
#   scripts/validate-k8s.sh            # the Kubernetes version below
#   K8S_VERSION=1.30.0 scripts/validate-k8s.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.37.0                       # kubernetes-validate release (also the newest schema it has)
k8s=${K8S_VERSION:-1.33.0}           # the Kubernetes API version validated against
venv=.build/k8s-venv
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$version"; then
  command -v python3 >/dev/null || { echo "error: validate-k8s needs python3 (with venv and pip) to install kubernetes-validate" >&2; exit 2; }
  mkdir -p .build
  rm -rf "$venv"
  python3 -m venv "$venv" >/dev/null 2>&1 || { echo "error: python3 -m venv failed; install python3-venv (Debian) and run again" >&2; exit 2; }
  "$venv/bin/python" -m pip --version >/dev/null 2>&1 || { echo "error: pip is not available in the venv; install python3-pip/python3-venv and run again" >&2; exit 2; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$version" \
    || { echo "error: pip install kubernetes-validate==$version failed (is PyPI reachable?)" >&2; exit 2; }
fi
files=()
for f in cluster/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || files+=("$f")
done
laser=${LASER_BIN:-.build/debug/laser}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -x "$laser" ]; then
  LASER_BIN=$laser cluster/kubernetes/make-secrets.sh "$tmp/keys" 2>/dev/null >"$tmp/secrets.yaml"
  files+=("$tmp/secrets.yaml")
fi
# The kustomization, rendered, where kubectl is installed (it bundles kustomize).
if command -v kubectl >/dev/null && kubectl kustomize cluster/kubernetes >"$tmp/kustomized.yaml" 2>"$tmp/kustomize.err"; then
  files+=("$tmp/kustomized.yaml")
elif command -v kubectl >/dev/null; then
  echo "error: kubectl kustomize cluster/kubernetes failed: $(cat "$tmp/kustomize.err")" >&2; exit 1
fi
"$venv/bin/kubernetes-validate" --strict --kubernetes-version "$k8s" --quiet "${files[@]}"
echo "kubernetes manifests valid against Kubernetes $k8s (strict): ${files[*]}"
