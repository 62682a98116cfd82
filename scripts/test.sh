#!/usr/bin/env bash
# The test command: installs what is missing, checks the generated protobuf-c code is current,
# validates the Kubernetes manifests, builds, and runs every test (unit, seeded simulation,
# real-process integration, the cluster launchers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/generate-proto.sh --check
swift build --build-tests
scripts/validate-k8s.sh      # after the build: it also checks the Secrets made with the laser binary
if [ $# -gt 0 ]; then
  swift test --skip-build "$@"
else
  # The cluster tests start daemons, namespaces and dozens of processes, and the hostile-input test
  # pushes 100,000 frames through a live coordinator: run them after the rest, so their load and the
  # rest's do not slow each other's timing-bound tests (suites run in parallel).
  swift test --skip-build --skip ClusterTests --skip HostileInputTests
  swift test --skip-build --filter 'ClusterTests|HostileInputTests'
  # The wire's NUL check in plain C (valgrind and sanitizers), and the attacker's side in Python, written
  # from proto/ alone against real laser processes (docs/security.md).
  Tests/CProtoCheckC/run.sh
  Tests/hostile/run.sh
  # A worker written in Python from proto/ and docs/protocol.md alone must give byte-identical batches.
  Tests/conformance/run.sh
  # The trainer client as a pip package (clients/python/pyproject.toml, laser-client).
  clients/python/check-install.sh
  # The real stack: real Hugging Face models (made on the spot) behind the transformers RM server, TRL
  # training through laser, the on-policy loop. Installs torch, transformers, trl and datasets into
  # .venv-ml the first time (scripts/ml-env.sh prints how long that took).
  Tests/realstack/run.sh
  # The Ray launcher on a local Ray cluster (ray start --head, loopback only), with a killed worker actor
  # that Ray restarts; installs ray into .venv-ray the first time.
  scripts/ray-test.sh
fi
