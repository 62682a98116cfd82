"""Attacker-side test harness for laser (issue 19 "trust boundaries" and the security items of issue 14).

Written from the wire contract only: proto/laser.proto, docs/protocol.md, docs/configuration.md and the
design in design-trust.md. Nothing here imports laser's own clients (clients/python): the Python protobuf
module is generated from proto/laser.proto with `protoc --python_out` into a temporary folder, and every
peer below is a raw ZeroMQ DEALER (or, for the fake-coordinator tests, a raw ROUTER).

Processes under test:
  - the laser binary: $LASER_BIN, default <repo>/.build/debug/laser
  - `laser demo-data`, `laser coordinator`, `laser worker` are started per test and always killed in
    teardown (each in its own process group, so children such as subprocess RMs go too).

Every wait is bounded. Only 127.0.0.1 is used.
"""

import http.server
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import zmq

REPO = Path(__file__).resolve().parents[2]
PROTO = REPO / "proto" / "laser.proto"
DEFAULT_BIN = REPO / ".build" / "debug" / "laser"
PROTOCOL_VERSION = 1


# ---------------------------------------------------------------------------------------------------
# Protobuf module, generated from proto/laser.proto (never clients/python/laser_pb2.py).
# ---------------------------------------------------------------------------------------------------

def _generate_pb():
    out = tempfile.mkdtemp(prefix="laser-hostile-pb-")
    try:
        subprocess.run(["protoc", f"--proto_path={PROTO.parent}", f"--python_out={out}", str(PROTO)],
                       check=True, capture_output=True, timeout=60)
        spec = importlib.util.spec_from_file_location("laser_hostile_pb2", os.path.join(out, "laser_pb2.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        shutil.rmtree(out, ignore_errors=True)


pb = _generate_pb()


# ---------------------------------------------------------------------------------------------------
# Envelopes
# ---------------------------------------------------------------------------------------------------

def envelope(**body):
    """envelope(hello=pb.Hello(...)) -> serialisable Envelope with protocol_version 1."""
    assert len(body) == 1, body
    return pb.Envelope(protocol_version=PROTOCOL_VERSION, **body)


def kind_of(env):
    return env.WhichOneof("body") if env is not None else None


def hello(worker_id, slots=1, reward_models=(), labels=(), json_candidates=False):
    return envelope(hello=pb.Hello(worker_id=worker_id, slots=slots, reward_models=list(reward_models),
                                   labels=list(labels), software_version="hostile-test",
                                   json_candidates=json_candidates))


def heartbeat():
    return envelope(heartbeat=pb.Heartbeat())


def trainer_hello(trainer_id, window=1):
    return envelope(trainer_hello=pb.TrainerHello(trainer_id=trainer_id, window=window,
                                                  software_version="hostile-test"))


def batch_feedback(global_batch, loss, iteration=0, batch=0):
    return envelope(batch_feedback=pb.BatchFeedback(global_batch=global_batch, loss=loss,
                                                    iteration=iteration, batch=batch))


def score_failure(task_id, attempt, message="rogue failure"):
    return envelope(score_result=pb.ScoreResult(task_id=task_id, attempt=attempt,
                                                failure=pb.ScoreFailure(message=message), elapsed_us=1))


def score_success(task_id, attempt, shape, value_of=lambda item, cand: 0.0):
    """shape: list with the number of candidates of each item."""
    items = [pb.ItemScores(scores=[float(value_of(i, c)) for c in range(n)]) for i, n in enumerate(shape)]
    return envelope(score_result=pb.ScoreResult(task_id=task_id, attempt=attempt,
                                                success=pb.ScoreSuccess(items=items), elapsed_us=1))


def task_shape(task):
    """Candidates per item of a ScoreTask (candidates or candidates_json)."""
    return [max(len(item.candidates), len(item.candidates_json)) for item in task.items]


# ---------------------------------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------------------------------

def wait_for(predicate, timeout, interval=0.05):
    """Poll predicate until it returns a truthy value or timeout passes; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def batch_files(run_dir):
    """{relative path: bytes} of every iterations/*/batch-*.jsonl of a run directory."""
    run_dir = Path(run_dir)
    return {str(p.relative_to(run_dir)): p.read_bytes()
            for p in sorted(run_dir.glob("iterations/*/batch-*.jsonl"))}


def http_get(url, timeout=3.0):
    import urllib.request
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------

class Proc:
    """A child process with stdout/stderr in files (never a pipe that could fill up and block it)."""

    def __init__(self, args, workdir, name, env=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.stdout_path = Path(workdir) / f"{name}.stdout"
        self.stderr_path = Path(workdir) / f"{name}.stderr"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.popen = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                      env=full_env, cwd=str(workdir), start_new_session=True)
        self.pid = self.popen.pid

    def poll(self):
        return self.popen.poll()

    def alive(self):
        return self.popen.poll() is None

    def wait(self, timeout):
        """Exit status, or None when it is still running after timeout seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stderr_bytes(self):
        return self.stderr_path.read_bytes() if self.stderr_path.exists() else b""

    def stderr_text(self):
        return self.stderr_bytes().decode("utf-8", "replace")

    def stdout_text(self):
        return self.stdout_path.read_bytes().decode("utf-8", "replace") if self.stdout_path.exists() else ""

    def kill(self):
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(2.0) is None:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(5.0)
        else:
            # The leader is gone; children in its group (a subprocess RM) may not be.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for f in (self._out, self._err):
            try:
                f.close()
            except Exception:
                pass

    def tail(self, n=3000):
        return self.stderr_text()[-n:]


class Coordinator(Proc):
    def __init__(self, args, workdir, name, run_dir):
        super().__init__(args, workdir, name)
        self.run_dir = Path(run_dir)
        self.endpoint = None
        self.metrics_url = None

    def wait_listening(self, timeout=20.0):
        def find():
            # The plain line "coordinator listening on EP; run directory DIR" (stdout in today's binary,
            # stderr per the brief), else the log line "... coordinator listening on EP".
            for line in (self.stdout_text() + "\n" + self.stderr_text()).splitlines():
                if line.startswith("coordinator listening on "):
                    return line[len("coordinator listening on "):].split(";")[0].strip()
            m = re.search(r"coordinator listening on (tcp://[^\s;]+)", self.stderr_text())
            if m:
                return m.group(1)
            if not self.alive():
                raise AssertionError(f"coordinator exited ({self.poll()}) before listening:\n{self.tail()}")
            return None
        self.endpoint = wait_for(find, timeout)
        if not self.endpoint:
            raise AssertionError(f"coordinator did not print its endpoint within {timeout} s:\n{self.tail()}")
        return self.endpoint

    def find_metrics_url(self, timeout=5.0):
        """The /metrics URL the coordinator printed ("metrics on http://.../metrics"), or None."""
        def find():
            m = re.search(r"metrics on (http://\S+/metrics)", self.stdout_text() + "\n" + self.stderr_text())
            return m.group(1) if m else None
        self.metrics_url = wait_for(find, timeout)
        return self.metrics_url

    def summary(self):
        return json.loads((self.run_dir / "summary.json").read_text())

    def counters(self):
        return self.summary().get("counters", {})

    def status(self):
        p = self.run_dir / "status.json"
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError):
            return {}

    def batch_emitted(self, n):
        """True once batch file n (1-based, iteration 1) exists."""
        return (self.run_dir / "iterations" / "0001" / f"batch-{n:04d}.jsonl").exists()

    def rss_kib(self):
        return rss_kib(self.pid)


# ---------------------------------------------------------------------------------------------------
# Raw ZeroMQ peers
# ---------------------------------------------------------------------------------------------------

class Peer:
    """A raw DEALER connected to the coordinator: one frame per message = one Envelope."""

    def __init__(self, ctx, endpoint, identity=None):
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if identity is not None:
            self.sock.setsockopt(zmq.ROUTING_ID, identity)
        self.sock.connect(endpoint)
        self.tasks = []          # ScoreTasks seen while waiting for something else
        self.seen = []           # every decoded envelope, in order
        self.closed = False

    def send(self, env):
        """Never blocks: with the send queue full (a peer that is gone), the message is dropped; False then."""
        try:
            self.sock.send(env.SerializeToString() if hasattr(env, "SerializeToString") else env, zmq.DONTWAIT)
            return True
        except zmq.Again:
            return False

    def send_frames(self, frames):
        try:
            self.sock.send_multipart(frames, zmq.DONTWAIT)
            return True
        except zmq.Again:
            return False

    def recv(self, timeout):
        """The next Envelope, or None after timeout seconds."""
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        frames = self.sock.recv_multipart()
        env = pb.Envelope()
        env.ParseFromString(frames[-1])
        self.seen.append(env)
        if kind_of(env) == "score_task":
            self.tasks.append(env.score_task)
        return env

    def recv_kind(self, kinds, timeout, heartbeat_every=0.5):
        """First envelope whose body is one of kinds (a str or a tuple); sends Heartbeats meanwhile so the
        coordinator keeps this peer alive. None after timeout."""
        if isinstance(kinds, str):
            kinds = (kinds,)
        deadline = time.monotonic() + timeout
        next_beat = time.monotonic() + heartbeat_every
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if heartbeat_every and now >= next_beat:
                self.send(heartbeat())
                next_beat = now + heartbeat_every
            env = self.recv(min(deadline, next_beat) - now if heartbeat_every else deadline - now)
            if env is not None and kind_of(env) in kinds:
                return env

    def hello(self, worker_id, slots=1, reward_models=(), labels=(), timeout=5.0, heartbeat_every=0.0):
        """Send Hello; return the Welcome or Reject (or None when neither came within timeout)."""
        self.send(hello(worker_id, slots=slots, reward_models=reward_models, labels=labels))
        return self.recv_kind(("welcome", "reject"), timeout, heartbeat_every=heartbeat_every)

    def close(self):
        if not self.closed:
            self.sock.close(linger=0)
            self.closed = True


class RogueLoop(threading.Thread):
    """Runs handler(peer) on its own thread until stop() (for peers that must keep misbehaving while the
    test waits for the coordinator). handler is called repeatedly; it should return within ~0.1 s."""

    all_loops = []

    def __init__(self, peer, handler):
        super().__init__(daemon=True)
        RogueLoop.all_loops.append(self)
        self.peer = peer
        self.handler = handler
        self._halt = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self._halt.is_set():
                self.handler(self.peer)
        except Exception as exc:  # reported by the test
            self.error = exc

    def stop(self):
        self._halt.set()
        self.join(5.0)


# ---------------------------------------------------------------------------------------------------
# A local HTTP listener that records every request (stands in for an attacker-chosen URL)
# ---------------------------------------------------------------------------------------------------

class RecordingHTTPServer:
    def __init__(self):
        self.requests = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.requests.append({"method": self.command, "path": self.path,
                                          "headers": dict(self.headers), "body": body})
                payload = json.dumps({"rewards": [0.0] * 64}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _record

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------------
# Config text helpers (the demo config is plain YAML written by laser demo-data; no YAML library needed)
# ---------------------------------------------------------------------------------------------------

def set_network(text, key, value):
    """Set network.<key> in a demo config (replacing the line, or adding it to the network block)."""
    pattern = re.compile(rf"^(  {re.escape(key)}:).*$", re.M)
    block = re.search(r"^network:\n((?:  .*\n?)*)", text, re.M)
    assert block, "demo config has no network block"
    body = block.group(1)
    if pattern.search(body):
        body = pattern.sub(rf"\g<1> {value}", body)
    else:
        body = body.rstrip("\n") + f"\n  {key}: {value}\n"
    return text[:block.start(1)] + body + text[block.end(1):]


def with_latency(text, ms):
    """Wrap every RM of a demo config in `simulated-latency` (same name, same scores, `ms` per prompt), so a
    run lasts long enough for peers that join after the honest worker to take part."""
    head, sep, rest = text.partition("reward_models:\n")
    assert sep, "demo config has no reward_models block"
    lines = rest.split("\n")
    end = next(i for i, line in enumerate(lines) if line and not line.startswith(" "))
    block, tail = lines[:end], lines[end:]
    out = []
    for line in block:
        m = re.match(r'^    kind: "?([A-Za-z0-9_-]+)"?$', line)
        if m:
            out += ['    kind: "simulated-latency"', "    params:", f'      base: "{m.group(1)}"', f'      ms: "{ms}"']
        elif line.strip() == "params:":
            continue            # merged into the params block above
        else:
            out.append(line)
    return head + sep + "\n".join(out + tail)


def set_reward_source(text, source):
    new, n = re.subn(r"^(  source:).*$", rf"\g<1> {source}", text, flags=re.M)
    assert n == 1, "demo config has no reward.source line"
    return new


# ---------------------------------------------------------------------------------------------------
# The lab: binary, temp dir, processes and peers of one test, all torn down at the end
# ---------------------------------------------------------------------------------------------------

class Lab:
    def __init__(self, laser_bin, workdir):
        self.bin = laser_bin
        self.dir = Path(workdir)
        self.ctx = zmq.Context()
        self.procs = []
        self.peers = []
        self.servers = []
        self._n = 0

    def _name(self, prefix):
        self._n += 1
        return f"{prefix}-{self._n}"

    # -- data and config --
    def demo_data(self, iterations=1, prompts_per_task=8, seed=0):
        out = self.dir / self._name("data")
        r = subprocess.run([str(self.bin), "demo-data", "--out", str(out), "--iterations", str(iterations),
                            "--prompts-per-task", str(prompts_per_task), "--seed", str(seed)],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, f"laser demo-data failed: {r.stderr.decode(errors='replace')}"
        return out / "config.yaml"

    def config(self, transform=None, **demo):
        """A demo config, optionally rewritten by transform(text) -> text; returns its path."""
        path = self.demo_data(**demo)
        if transform:
            path.write_text(transform(path.read_text()))
        return path

    # -- processes --
    def coordinator(self, config, run_dir=None, extra=(), log_level="info"):
        run_dir = Path(run_dir) if run_dir else self.dir / self._name("run")
        name = self._name("coordinator")
        args = [self.bin, "coordinator", config, "--bind", "tcp://127.0.0.1:*", "--out", run_dir,
                "--log-level", log_level, *extra]
        c = Coordinator(args, self.dir, name, run_dir)
        self.procs.append(c)
        c.wait_listening()
        return c

    def worker(self, endpoint, worker_id, extra=(), give_up_after=60, env=None):
        args = [self.bin, "worker", "--connect", endpoint, "--id", worker_id,
                "--give-up-after", str(give_up_after), *extra]
        p = Proc(args, self.dir, self._name(f"worker-{worker_id}"), env=env)
        self.procs.append(p)
        return p

    def wait_joined(self, coordinator, worker_id, timeout=15.0):
        """Wait until the coordinator logs that worker_id joined."""
        needle = f"worker {worker_id} joined"
        ok = wait_for(lambda: needle in coordinator.stderr_text(), timeout)
        assert ok, f"worker {worker_id} did not join within {timeout} s:\n{coordinator.tail()}"

    # -- peers --
    def peer(self, endpoint, identity=None):
        p = Peer(self.ctx, endpoint, identity)
        self.peers.append(p)
        return p

    def router(self):
        """A ROUTER bound on 127.0.0.1 (a fake coordinator). Returns (socket, endpoint)."""
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind("tcp://127.0.0.1:*")
        self.peers.append(_SocketCloser(sock))
        return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def http_recorder(self):
        s = RecordingHTTPServer()
        self.servers.append(s)
        return s

    # -- scenarios shared by several tests --
    def stalled_run(self, transform=None, worker_id="w1", **demo):
        """A coordinator with reward.source trainer-loss and one honest worker, waiting for the loss of
        batch 0 (batch-0001.jsonl written): it stays up, no task is queued, until a trainer reports."""
        def t(text):
            text = set_reward_source(text, "trainer-loss")
            return transform(text) if transform else text
        cfg = self.config(t, **demo)
        coord = self.coordinator(cfg)
        self.worker(coord.endpoint, worker_id)
        self.wait_joined(coord, worker_id)
        assert wait_for(lambda: coord.batch_emitted(1), 20), \
            f"batch 1 was not emitted within 20 s:\n{coord.tail()}"
        return coord

    def close(self):
        # Threads that use peers' sockets stop before any socket is closed (ZeroMQ sockets are not
        # thread-safe).
        for loop in RogueLoop.all_loops:
            loop.stop()
        RogueLoop.all_loops.clear()
        for p in self.peers:
            try:
                p.close()
            except Exception:
                pass
        for p in reversed(self.procs):
            try:
                p.kill()
            except Exception:
                pass
        for s in self.servers:
            try:
                s.close()
            except Exception:
                pass
        try:
            self.ctx.term()
        except Exception:
            pass


class _SocketCloser:
    def __init__(self, sock):
        self.sock = sock

    def close(self):
        self.sock.close(linger=0)


# ---------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def laser_bin():
    path = Path(os.environ.get("LASER_BIN", str(DEFAULT_BIN)))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"laser binary not found or not executable: {path} (set LASER_BIN)")
    return path


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="laser-hostile-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def lab(laser_bin, workdir):
    lab = Lab(laser_bin, workdir)
    try:
        yield lab
    finally:
        lab.close()
