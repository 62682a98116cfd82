#!/usr/bin/env bash
# Checks that the trainer client installs as a package (`pip install ./clients/python`, named
# laser-client) and that the installed modules are the repository's: laser_trainer imports from
# outside the source folder, and its laser_pb2 is the generated module CI checks against proto/.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"; rm -rf "$root/clients/python/build" "$root/clients/python/laser_client.egg-info"' EXIT
start=$(date +%s)
python3 -m pip install -q --disable-pip-version-check --target "$tmp/site" "$root/clients/python" 2>&1 | grep -v "Running pip as the 'root' user" || true
cd "$tmp"
PYTHONPATH="$tmp/site" python3 - "$root" <<'PY'
import filecmp, os, sys
import laser_trainer, laser_pb2
root = sys.argv[1]
assert os.path.dirname(laser_trainer.__file__) != os.path.join(root, "clients", "python"), laser_trainer.__file__
assert filecmp.cmp(laser_pb2.__file__, os.path.join(root, "clients", "python", "laser_pb2.py"), shallow=False), "installed laser_pb2 differs"
assert filecmp.cmp(laser_trainer.__file__, os.path.join(root, "clients", "python", "laser_trainer.py"), shallow=False)
# laser_trl needs trl (the [trl] extra): checked as a file here, imported by Tests/realstack.
installed_trl = os.path.join(os.path.dirname(laser_trainer.__file__), "laser_trl.py")
assert filecmp.cmp(installed_trl, os.path.join(root, "clients", "python", "laser_trl.py"), shallow=False), "laser_trl not installed"
env = laser_pb2.Envelope(protocol_version=1)
env.batch_feedback.global_batch = 3
env.batch_feedback.loss = 0.5
assert laser_pb2.Envelope.FromString(env.SerializeToString()).batch_feedback.global_batch == 3
print("laser-client installs: laser_trainer and laser_pb2 from", os.path.dirname(laser_trainer.__file__))
PY
echo "pip install ./clients/python took $(( $(date +%s) - start )) s"
