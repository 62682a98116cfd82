#!/usr/bin/env python3
"""A minimal laser worker, written from proto/laser.proto and docs/protocol.md alone.

It is the conformance check of the wire contract (issue 14, "Protocol and docs are the contract"): if
this worker, which knows nothing of laser's own code (nothing from Sources/, clients/python or
Tests/hostile), produces the same batch files as `laser worker`, the docs are enough to write one.

What it implements (docs/protocol.md, "A minimal worker, step by step"):
  - one DEALER socket, one frame per message, Envelope.protocol_version 1;
  - Hello (repeated every 2 s until Welcome or Reject), json_candidates on request;
  - Reject: retry_after_ms > 0 -> Hello again after that long; 0 -> print the reason, exit 1;
  - Welcome: checks the RMs it is given ("What a worker must refuse") and builds them; the only kind
    it can build is the built-in `length` (docs/protocol.md, "The built-in `length` RM, exactly");
  - ScoreTask -> ScoreResult (task_id and attempt echoed, elapsed_us), a failure for an RM it did not
    build; candidates from `candidates` or, decoded, from `candidates_json`;
  - Heartbeat after one silent interval; after `liveness` silent intervals a fresh socket and Hello;
  - Disconnect -> drop work in progress, Hello again; Shutdown -> exit 0.

Test-only knobs, none of which changes what goes on the wire: --score-delay-ms holds each result back
for a while (without blocking heartbeats: the socket keeps being served), --stats writes counters as
JSON at exit, and --count codepoints scores with Python's len() instead of grapheme clusters (to show
that the docs' warning matters).

Counting grapheme clusters needs the `regex` module (its \\X); without it only ASCII texts can be
counted exactly (every ASCII character is one cluster, except CR LF which is one together), and a task
with other text is answered with a ScoreFailure.

Exit codes: 0 Shutdown; 1 rejected (permanent Reject); 2 refused the Welcome's RMs; 3 protocol
version mismatch; 4 gave up (--give-up-after) without a coordinator.
"""

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

try:
    import regex as _regex  # grapheme clusters: \X
except ImportError:  # pragma: no cover - depends on the machine
    _regex = None

PROTOCOL_VERSION = 1
HELLO_RETRY_S = 2.0
REPO = Path(__file__).resolve().parents[2]


def load_pb(proto=REPO / "proto" / "laser.proto"):
    """laser_pb2 generated from the .proto with protoc into a temporary folder."""
    out = tempfile.mkdtemp(prefix="laser-conformance-pb-")
    try:
        subprocess.run(["protoc", f"--proto_path={Path(proto).parent}", f"--python_out={out}", str(proto)],
                       check=True, capture_output=True, timeout=60)
        spec = importlib.util.spec_from_file_location("laser_conformance_pb2", os.path.join(out, "laser_pb2.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        shutil.rmtree(out, ignore_errors=True)


def grapheme_count(text):
    """Characters as laser's `length` RM counts them: extended grapheme clusters (Swift's String.count)."""
    if _regex is not None:
        return len(_regex.findall(r"\X", text))
    if text.isascii():
        return len(text) - text.count("\r\n")
    raise ValueError("counting grapheme clusters of non-ASCII text needs the Python 'regex' module")


def decode_candidate_json(body):
    """ScoreItem.candidates_json[i]: the body of a JSON string literal (no quotes), UTF-8."""
    return json.loads(b'"' + bytes(body) + b'"')


class LengthRM:
    """The built-in `length` kind: -log(1 + characters) (prefer shorter, the default) or +log(...)."""

    def __init__(self, params, count):
        unknown = sorted(set(params) - {"prefer"})
        if unknown:
            raise ValueError(f"unknown param(s) {', '.join(unknown)} for kind length")
        prefer = params.get("prefer", "shorter").lower()
        if prefer not in ("shorter", "longer"):
            raise ValueError(f"prefer is {params.get('prefer')!r}; expected \"shorter\" or \"longer\"")
        self.sign = -1.0 if prefer == "shorter" else 1.0
        self.count = count

    def score(self, candidates):
        return [self.sign * math.log(1 + self.count(c)) for c in candidates]


class Worker:
    def __init__(self, pb, args):
        self.pb = pb
        self.args = args
        self.ctx = zmq.Context()
        self.sock = None
        self.registered = False
        self.heartbeat_s = 1.0
        self.liveness = 5
        self.models = {}
        self.offered = list(args.rm)
        self.count = grapheme_count if args.count == "graphemes" else len
        now = time.monotonic()
        self.last_heard = self.last_sent = self.hello_sent = now
        self.next_hello = now + HELLO_RETRY_S
        self.waiting_since = now
        self.pending = []  # (due, ScoreResult): results held back by --score-delay-ms
        self.stats = {"hellos": 0, "welcomes": 0, "rejects_retry": [], "disconnects": 0, "reconnects": 0,
                      "tasks": 0, "failures_sent": 0, "items_json": 0, "items_text": 0, "heartbeats_sent": 0,
                      "welcome_models": [], "shutdown": None}

    # -- sending ------------------------------------------------------------------------------------

    def send(self, **body):
        env = self.pb.Envelope(protocol_version=PROTOCOL_VERSION, **body)
        self.sock.send(env.SerializeToString())  # one frame
        self.last_sent = time.monotonic()

    def hello(self):
        self.send(hello=self.pb.Hello(worker_id=self.args.id, reward_models=self.offered, slots=self.args.slots,
                                      software_version="conformance-python", labels=list(self.args.label),
                                      json_candidates=self.args.json_candidates))
        self.stats["hellos"] += 1
        self.hello_sent = time.monotonic()
        self.next_hello = self.hello_sent + HELLO_RETRY_S

    def connect(self):
        """A fresh DEALER socket (dropping whatever the old one had queued) and a Hello."""
        if self.sock is not None:
            self.sock.close(linger=0)
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RECONNECT_IVL, 100)
        s.setsockopt(zmq.MAXMSGSIZE, 256 << 20)
        s.connect(self.args.connect)
        self.sock = s
        self.hello()

    # -- receiving ----------------------------------------------------------------------------------

    def log(self, message):
        print(f"minimal_worker {self.args.id}: {message}", file=sys.stderr, flush=True)

    def on_welcome(self, w):
        models = {}
        for spec in w.reward_models:
            params = {p.key: p.value for p in spec.params}
            if self.offered and spec.name not in self.offered:
                return self.refuse(f"the coordinator assigned RM '{spec.name}', which this worker did not offer")
            if spec.kind != "length":
                return self.refuse(f"RM '{spec.name}' is of kind '{spec.kind}'; this worker builds only 'length'")
            try:
                models[spec.name] = LengthRM(params, self.count)
            except ValueError as e:
                return self.refuse(f"cannot build RM '{spec.name}': {e}")
        self.models = models
        self.heartbeat_s = max(0.01, w.heartbeat_interval_ms / 1000.0)
        self.liveness = max(2, w.liveness)
        if not self.registered:
            self.log(f"registered with {w.coordinator_id}: serving {', '.join(sorted(models))}")
        self.registered = True
        self.stats["welcomes"] += 1
        self.stats["welcome_models"] = [
            {"name": s.name, "kind": s.kind, "params": {p.key: p.value for p in s.params}} for s in w.reward_models]
        return None

    def refuse(self, why):
        self.log(f"refusing: {why}")
        return 2

    def on_task(self, t):
        started = time.monotonic()
        self.stats["tasks"] += 1
        result = self.pb.ScoreResult(task_id=t.task_id, attempt=t.attempt)
        model = self.models.get(t.reward_model)
        if model is None:
            result.failure.message = f"RM {t.reward_model} is not served by this worker"
        else:
            try:
                for item in t.items:
                    if len(item.candidates_json) > 0:
                        self.stats["items_json"] += 1
                        candidates = [decode_candidate_json(b) for b in item.candidates_json]
                    else:
                        self.stats["items_text"] += 1
                        candidates = list(item.candidates)
                    scores = model.score(candidates)
                    if not all(math.isfinite(s) for s in scores):
                        raise ValueError("a score is not finite")
                    result.success.items.add(scores=scores)
            except Exception as e:  # an RM error is a ScoreFailure, never a crash
                result.ClearField("success")
                result.failure.message = f"{type(e).__name__}: {e}"
        if result.WhichOneof("outcome") == "failure":
            self.stats["failures_sent"] += 1
        result.elapsed_us = min(int((time.monotonic() - started) * 1e6), 2**32 - 1)
        due = time.monotonic() + self.args.score_delay_ms / 1000.0
        self.pending.append((due, result))

    def handle(self, frame):
        env = self.pb.Envelope()
        try:
            env.ParseFromString(frame)
        except Exception:
            self.log(f"undecodable message ({len(frame)} bytes); dropped")
            return None
        if env.protocol_version != PROTOCOL_VERSION:
            self.log(f"the coordinator speaks protocol version {env.protocol_version}, this worker "
                     f"{PROTOCOL_VERSION}: run the same laser version on every node")
            return 3
        kind = env.WhichOneof("body")
        if kind == "welcome":
            return self.on_welcome(env.welcome)
        if kind == "reject":
            r = env.reject
            if r.retry_after_ms > 0:
                self.log(f"refused for now (retry_after_ms={r.retry_after_ms}): {r.reason}")
                self.stats["rejects_retry"].append(r.retry_after_ms)
                self.registered = False
                self.next_hello = time.monotonic() + r.retry_after_ms / 1000.0
                return None
            self.log(f"rejected: {r.reason}")
            print(f"the coordinator rejected this worker: {r.reason}", file=sys.stderr, flush=True)
            return 1
        if kind == "heartbeat":
            return None
        if kind == "score_task":
            if self.registered:
                self.on_task(env.score_task)
            return None
        if kind == "disconnect":
            self.log(f"disconnected ({env.disconnect.reason}); saying Hello again")
            self.stats["disconnects"] += 1
            self.registered = False
            self.pending = []  # the coordinator has re-queued these tasks
            self.waiting_since = time.monotonic()
            self.hello()
            return None
        if kind == "shutdown":
            self.log(f"shut down: {env.shutdown.reason}")
            self.stats["shutdown"] = env.shutdown.reason
            return 0
        self.log(f"the coordinator sent {kind}, which a coordinator does not send to a worker; ignored")
        return None

    # -- the loop -----------------------------------------------------------------------------------

    def run(self):
        self.connect()
        while True:
            timeout_ms = max(5, int(self.heartbeat_s * 100)) if self.registered else 50
            if self.sock.poll(timeout_ms, zmq.POLLIN):
                while True:
                    try:
                        frames = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.last_heard = time.monotonic()
                    if len(frames) != 1:
                        self.log(f"a {len(frames)}-frame message; expected 1; dropped")
                        continue
                    code = self.handle(frames[0])
                    if code is not None:
                        return code
            now = time.monotonic()
            if self.registered:
                ready = [r for due, r in self.pending if due <= now]
                self.pending = [(due, r) for due, r in self.pending if due > now]
                for r in ready:
                    self.send(score_result=r)
                if now - self.last_heard > self.heartbeat_s * self.liveness:
                    self.log("coordinator silent; reconnecting")
                    self.stats["reconnects"] += 1
                    self.registered = False
                    self.pending = []
                    self.waiting_since = now
                    self.connect()
                elif now - self.last_sent >= self.heartbeat_s:
                    self.send(heartbeat=self.pb.Heartbeat())
                    self.stats["heartbeats_sent"] += 1
            else:
                if self.args.give_up_after > 0 and now - self.waiting_since > self.args.give_up_after:
                    self.log(f"no coordinator registered this worker within {self.args.give_up_after} s; giving up")
                    return 4
                if now >= self.next_hello:
                    self.connect()

    def close(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.ctx.term()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--connect", required=True, help="the coordinator's endpoint, e.g. tcp://127.0.0.1:5555")
    p.add_argument("--id", required=True, help="worker_id")
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--rm", action="append", default=[], help="an RM to offer (repeatable); none: any")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--json-candidates", action="store_true", help="set Hello.json_candidates")
    p.add_argument("--count", choices=["graphemes", "codepoints"], default="graphemes")
    p.add_argument("--score-delay-ms", type=float, default=0.0)
    p.add_argument("--give-up-after", type=float, default=0.0, help="seconds without registration; 0: never")
    p.add_argument("--stats", help="write counters as JSON to this file at exit")
    args = p.parse_args(argv)
    worker = Worker(load_pb(), args)
    code = 1
    try:
        code = worker.run()
    finally:
        worker.close()
        if args.stats:
            worker.stats["exit"] = code
            Path(args.stats).write_text(json.dumps(worker.stats, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
