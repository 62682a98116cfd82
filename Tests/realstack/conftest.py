"""Fixtures of the real-stack tests: tiny Hugging Face models made on the spot, the real
transformers RM server (examples/rm-servers/hf_rm_server.py) and the laser binary."""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LASER = os.environ.get("LASER_BIN", os.path.join(ROOT, ".build", "debug", "laser"))
sys.path.insert(0, os.path.join(ROOT, "examples", "rm-servers"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-models")
    subprocess.run([sys.executable, os.path.join(ROOT, "examples", "rm-servers", "make_tiny_models.py"), str(out)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def hf_server(tiny_models):
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "rm-servers", "hf_rm_server.py"),
                             "--rm", str(tiny_models / "rm"), "--lm", str(tiny_models / "lm"),
                             "--ref-lm", str(tiny_models / "ref-lm"), "--port", "0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "listening on " in line:
            url = line.split("listening on ")[1].strip()
            break
    if url is None:
        proc.kill()
        pytest.fail("hf_rm_server.py did not start")
    yield url
    proc.kill()
    proc.wait()


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


def run_laser(config_path, out_dir, timeout=600):
    """laser run CONFIG --out OUT; returns (seconds, summary)."""
    start = time.time()
    done = subprocess.run([LASER, "run", str(config_path), "--out", str(out_dir)], capture_output=True, text=True, timeout=timeout)
    seconds = time.time() - start
    assert done.returncode == 0, "laser run failed (%d):\n%s\n%s" % (done.returncode, done.stdout[-3000:], done.stderr[-3000:])
    with open(os.path.join(out_dir, "summary.json")) as f:
        return seconds, json.load(f)


def batch_lines(run_dir):
    lines = []
    for root, _, files in os.walk(os.path.join(run_dir, "iterations")):
        for name in sorted(files):
            if name.startswith("batch-") and name.endswith(".jsonl"):
                with open(os.path.join(root, name)) as f:
                    lines += [json.loads(l) for l in f if l.strip()]
    return lines
