"""Conformance of the wire contract (issue 14): a worker written in Python from proto/laser.proto and
docs/protocol.md alone (minimal_worker.py) drives a real `laser coordinator` to the same batch files,
byte for byte, as laser's own worker.

Processes: the laser binary ($LASER_BIN, default <repo>/.build/debug/laser) for `demo-data`,
`coordinator` and `worker`, and minimal_worker.py. Each runs in its own process group and is killed in
teardown. Every wait is bounded (each test well under 60 s). Only 127.0.0.1 is used.

Exact grapheme counting on non-ASCII text needs the Python `regex` module; the demo data is ASCII, so
only the non-ASCII test is skipped without it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WORKER = HERE / "minimal_worker.py"
DEFAULT_BIN = REPO / ".build" / "debug" / "laser"

sys.path.insert(0, str(HERE))
import minimal_worker  # noqa: E402  (for grapheme_count and the regex check only)

RUN_TIMEOUT_S = 30
ENDPOINT_TIMEOUT_S = 15


# ---------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def laser_bin():
    path = Path(os.environ.get("LASER_BIN", str(DEFAULT_BIN)))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"laser binary not found or not executable: {path} (swift build, or set LASER_BIN)")
    return str(path)


class Procs:
    """Processes started by one test; all killed (with their process groups) in teardown."""

    def __init__(self):
        self.started = []

    def start(self, cmd, log):
        f = open(log, "wb")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        f.close()
        p.log = Path(log)
        self.started.append(p)
        return p

    def kill_all(self):
        for p in self.started:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.kill_all()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_exit(p, timeout, what):
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what} did not exit within {timeout} s; its log:\n{tail(p.log)}")


def tail(path, n=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, laser_bin):
    """The demo's input for one iteration (24 ASCII prompts with `correct` labels)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    subprocess.run([laser_bin, "demo-data", "--out", str(out), "--iterations", "1", "--prompts-per-task", "8"],
                   check=True, capture_output=True, timeout=60)
    inputs = sorted((out / "input").glob("*.jsonl"))
    assert len(inputs) == 1, inputs
    return inputs[0]


def write_config(folder, input_path, prefer=None, network=None):
    """A run config with the single RM {name: length, kind: length} (docs/configuration.md)."""
    folder.mkdir(parents=True, exist_ok=True)
    rm = "{name: length, kind: length" + (f", params: {{prefer: {prefer}}}" if prefer else "") + "}"
    lines = [f"input: {json.dumps(str(input_path))}", "iterations: 1", "batch_size: 8", "reward_models:", f"  - {rm}"]
    if network:
        lines.append("network: {" + ", ".join(f"{k}: {v}" for k, v in network.items()) + "}")
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_coordinator(procs, laser_bin, config, run_dir):
    p = procs.start([laser_bin, "coordinator", str(config), "--bind", "tcp://127.0.0.1:*", "--out", str(run_dir)],
                    str(run_dir) + ".coordinator.log")
    endpoint_file = Path(run_dir) / "endpoint"

    def endpoint():
        if p.poll() is not None:
            raise AssertionError(f"the coordinator exited with {p.returncode} before it listened:\n{tail(p.log)}")
        if endpoint_file.is_file():
            text = endpoint_file.read_text().strip()
            return text if text.startswith("tcp://127.0.0.1:") and not text.endswith("*") else None
        return None

    return p, wait_for(endpoint, ENDPOINT_TIMEOUT_S, f"{endpoint_file}")


def python_worker(endpoint, worker_id, stats, *extra):
    return [sys.executable, str(WORKER), "--connect", endpoint, "--id", worker_id, "--stats", str(stats),
            "--give-up-after", "20", *extra]


def laser_worker(laser_bin, endpoint, worker_id):
    return [laser_bin, "worker", "--connect", endpoint, "--id", worker_id, "--give-up-after", "20"]


def finish(coordinator, workers):
    """The coordinator exits 0 (run complete), then every worker exits 0 (Shutdown)."""
    rc = wait_exit(coordinator, RUN_TIMEOUT_S, "the coordinator")
    assert rc == 0, f"coordinator exited {rc}:\n{tail(coordinator.log)}"
    for w in workers:
        rc = wait_exit(w, 15, f"worker {w.args}")
        assert rc == 0, f"worker exited {rc}:\n{tail(w.log)}"


def batch_files(run_dir):
    files = {str(f.relative_to(run_dir)): f.read_bytes() for f in sorted(Path(run_dir).glob("iterations/*/batch-*.jsonl"))}
    assert files, f"no batch files in {run_dir}"
    return files


def assert_same_batches(run_a, run_b):
    a, b = batch_files(run_a), batch_files(run_b)
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    different = [name for name in a if a[name] != b[name]]
    assert not different, f"batch files differ between {run_a} and {run_b}: {different}"
    assert any(a[name].strip() for name in a), "every batch file is empty: nothing was compared"


def run_with_laser_worker(procs, laser_bin, config, run_dir):
    coordinator, endpoint = start_coordinator(procs, laser_bin, config, run_dir)
    w = procs.start(laser_worker(laser_bin, endpoint, "laser-ref"), str(run_dir) + ".worker.log")
    finish(coordinator, [w])
    return run_dir


def run_with_python_worker(procs, laser_bin, config, run_dir, *extra):
    coordinator, endpoint = start_coordinator(procs, laser_bin, config, run_dir)
    stats = Path(str(run_dir) + ".stats.json")
    w = procs.start(python_worker(endpoint, "py-1", stats, *extra), str(run_dir) + ".worker.log")
    finish(coordinator, [w])
    return json.loads(stats.read_text())


# ---------------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------------

def test_text_candidates_match_laser_worker(tmp_path, procs, laser_bin, demo):
    """Hello without json_candidates: candidates come as text; output equals laser's worker's."""
    config = write_config(tmp_path / "cfg", demo)
    stats = run_with_python_worker(procs, laser_bin, config, tmp_path / "run1")
    run_with_laser_worker(procs, laser_bin, config, tmp_path / "run2")
    assert_same_batches(tmp_path / "run1", tmp_path / "run2")
    assert stats["exit"] == 0 and stats["shutdown"] == "run complete"
    assert stats["items_text"] == 24 and stats["items_json"] == 0, stats
    assert stats["failures_sent"] == 0
    # A built-in RM defined without params travels without params: the worker applies the defaults.
    assert stats["welcome_models"] == [{"name": "length", "kind": "length", "params": {}}]


def test_json_candidates_match_laser_worker(tmp_path, procs, laser_bin, demo):
    """Hello.json_candidates: candidates come as JSON string bodies (ScoreItem.candidates_json), which
    the worker decodes; with `prefer: longer` (a param sent in the Welcome)."""
    config = write_config(tmp_path / "cfg", demo, prefer="longer")
    stats = run_with_python_worker(procs, laser_bin, config, tmp_path / "run1", "--json-candidates")
    run_with_laser_worker(procs, laser_bin, config, tmp_path / "run2")
    assert_same_batches(tmp_path / "run1", tmp_path / "run2")
    assert stats["items_json"] == 24 and stats["items_text"] == 0, stats
    assert stats["welcome_models"] == [{"name": "length", "kind": "length", "params": {"prefer": "longer"}}]
    # The demo's candidates hold newlines: they must have travelled escaped (\n) and been decoded.
    assert b"\\n" in demo.read_bytes()


GRAPHEME_CANDIDATES = [
    "e\u0301e\u0301e\u0301",           # 3 clusters, 6 code points (e + combining acute)
    "abcd",                             # 4, 4
    "\U0001F1EB\U0001F1F7\U0001F1E9\U0001F1EA",  # two flags: 2 clusters, 4 code points
    "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466",  # a family: 1 cluster, 7 code points
    "x\r\ny",                           # CR LF is one cluster: 3, 4
    "na\u00efve \"quoted\"\tand\\back",  # precomposed, with escapes: 19, 19
]


def write_grapheme_input(path):
    """8 prompts whose candidates rank differently by clusters than by code points; half the lines
    escape non-ASCII as \\uXXXX (surrogate pairs included), half carry raw UTF-8."""
    lines = []
    for i in range(8):
        k = i % len(GRAPHEME_CANDIDATES)
        candidates = GRAPHEME_CANDIDATES[k:] + GRAPHEME_CANDIDATES[:k]
        record = {"id": f"g{i}", "prompt": f"Prompt {i}: which answer is shortest?", "task": "graphemes",
                  "candidates": [{"text": c, "correct": j == 0} for j, c in enumerate(candidates)]}
        lines.append(json.dumps(record, ensure_ascii=(i % 2 == 0)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.skipif(minimal_worker._regex is None, reason="the Python 'regex' module is needed to count grapheme clusters")
def test_length_counts_grapheme_clusters(tmp_path, procs, laser_bin):
    """docs/protocol.md: `length` counts extended grapheme clusters (Swift's String.count), not code
    points. Counting clusters matches laser's worker; Python's len() does not."""
    for text, clusters, code_points in [(GRAPHEME_CANDIDATES[0], 3, 6), (GRAPHEME_CANDIDATES[2], 2, 4),
                                        (GRAPHEME_CANDIDATES[3], 1, 7), (GRAPHEME_CANDIDATES[4], 3, 4)]:
        assert minimal_worker.grapheme_count(text) == clusters and len(text) == code_points
    data = write_grapheme_input(tmp_path / "graphemes.jsonl")
    config = write_config(tmp_path / "cfg", data)
    stats = run_with_python_worker(procs, laser_bin, config, tmp_path / "run-json", "--json-candidates")
    assert stats["items_json"] == 8 and stats["failures_sent"] == 0, stats
    run_with_python_worker(procs, laser_bin, config, tmp_path / "run-text")
    run_with_laser_worker(procs, laser_bin, config, tmp_path / "run-laser")
    run_with_python_worker(procs, laser_bin, config, tmp_path / "run-len", "--count", "codepoints")
    assert_same_batches(tmp_path / "run-json", tmp_path / "run-laser")
    assert_same_batches(tmp_path / "run-text", tmp_path / "run-laser")
    assert batch_files(tmp_path / "run-len") != batch_files(tmp_path / "run-laser"), \
        "counting code points gave the same pairs: the test data does not tell the two apart"


def test_permanent_reject_exits_nonzero(tmp_path, procs, laser_bin, demo):
    """Reject with retry_after_ms 0 (an RM the run does not define): the worker prints the reason and
    exits non-zero."""
    config = write_config(tmp_path / "cfg", demo)
    _, endpoint = start_coordinator(procs, laser_bin, config, tmp_path / "run")
    w = procs.start(python_worker(endpoint, "py-bad", tmp_path / "stats.json", "--rm", "no-such-rm"),
                    tmp_path / "worker.log")
    assert wait_exit(w, 15, "the rejected worker") == 1
    log = w.log.read_text()
    assert "rejected" in log and "no-such-rm" in log, log


def test_duplicate_id_waits_retry_after_then_takes_over(tmp_path, procs, laser_bin, demo):
    """A second connection with a live worker's id gets Reject{retry_after_ms > 0}; it waits and says
    Hello again, takes the id over once the holder is gone, and finishes the run."""
    reference = run_with_laser_worker(procs, laser_bin, write_config(tmp_path / "ref", demo), tmp_path / "ref-run")
    config = write_config(tmp_path / "cfg", demo, network={"heartbeat_ms": 200, "liveness": 3, "max_attempts": 5})
    coordinator, endpoint = start_coordinator(procs, laser_bin, config, tmp_path / "run")
    # Slow (1 s per task, 6 tasks): the run is still going when the newcomer is refused; it is killed then.
    holder = procs.start(python_worker(endpoint, "dup", tmp_path / "a.json", "--slots", "1", "--score-delay-ms", "1000"),
                         tmp_path / "a.log")
    wait_for(lambda: "registered" in holder.log.read_text(), 15, "the first worker to register")
    newcomer = procs.start(python_worker(endpoint, "dup", tmp_path / "b.json"), tmp_path / "b.log")
    wait_for(lambda: "refused for now" in newcomer.log.read_text(), 15, "the second worker to be refused for now")
    assert newcomer.poll() is None, "a Reject with retry_after_ms > 0 must not end the worker"
    os.killpg(holder.pid, signal.SIGKILL)
    finish(coordinator, [newcomer])
    stats = json.loads((tmp_path / "b.json").read_text())
    assert stats["rejects_retry"] and all(ms > 0 for ms in stats["rejects_retry"]), stats
    assert stats["welcomes"] >= 1 and stats["tasks"] >= 1, stats
    assert_same_batches(tmp_path / "run", reference)


def test_disconnect_and_silence_lead_to_hello(tmp_path, procs, laser_bin, demo):
    """A worker the coordinator declared dead (stopped for longer than liveness x heartbeat) gets
    Disconnect, or notices the silence itself; either way it says Hello again, is welcomed again and
    finishes the run with the same output."""
    reference = run_with_laser_worker(procs, laser_bin, write_config(tmp_path / "ref", demo), tmp_path / "ref-run")
    config = write_config(tmp_path / "cfg", demo, network={"heartbeat_ms": 200, "liveness": 4, "max_attempts": 5})
    coordinator, endpoint = start_coordinator(procs, laser_bin, config, tmp_path / "run")
    w = procs.start(python_worker(endpoint, "py-stop", tmp_path / "w.json", "--slots", "1", "--score-delay-ms", "300"),
                    tmp_path / "w.log")
    wait_for(lambda: "registered" in w.log.read_text(), 15, "the worker to register")
    time.sleep(0.4)
    os.killpg(w.pid, signal.SIGSTOP)
    try:
        time.sleep(2.0)  # > 4 x 200 ms: the coordinator forgets it and re-queues its task
    finally:
        os.killpg(w.pid, signal.SIGCONT)
    finish(coordinator, [w])
    stats = json.loads((tmp_path / "w.json").read_text())
    assert stats["welcomes"] >= 2, stats
    assert stats["disconnects"] + stats["reconnects"] >= 1, stats
    assert stats["heartbeats_sent"] >= 1, stats
    assert_same_batches(tmp_path / "run", reference)
