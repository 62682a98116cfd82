"""examples/on-policy/loop.py: 3 iterations of sample -> laser -> TRL -> sample from the trained policy."""
import json
import os
import re
import subprocess
import sys

from conftest import LASER, ROOT


def test_three_on_policy_iterations(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "on-policy", "loop.py"), "--iterations", "3",
                           "--work", str(tmp_path), "--laser", LASER], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    print(done.stdout.strip().splitlines()[-1])
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert [it["iteration"] for it in summary["iterations"]] == [1, 2, 3]
    for n in (1, 2, 3):
        assert os.path.exists(tmp_path / "data" / ("iteration-%d.jsonl.done" % n))
    steps = re.findall(r"trained on batch (\d+) \(iteration (\d+)", done.stdout)
    assert summary["counters"]["losses_accepted"] == len(steps) > 0
    # Each iteration after the first was sampled from a policy the previous iterations' steps changed.
    weights = re.search(r"policy weights per iteration: (\S+) -> (\S+) -> (\S+);", done.stdout).groups()
    assert len(set(weights)) == 3, weights
    trained_iterations = {int(it) for _, it in steps}
    assert 1 in trained_iterations and 2 in trained_iterations
