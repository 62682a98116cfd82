"""Issue item 19.1: workers run only what is defined on their own side (design-trust.md, section A).

The test is the attacker: it binds its OWN ROUTER (a fake coordinator) and a stock `laser worker`
connects to it. The Welcome then tries to make the worker run things the worker never defined:
  (a) a `subprocess` RM whose command would create a marker file,
  (b) an `http` RM whose url points at a listener of the test, with api_key_env naming a secret of the
      worker's environment,
  (c) an RM named `other` (kind length) that the worker never offered.
Each must be refused: nothing started, no URL called, the worker exits non-zero naming the RM.
Positive controls: a built-in `length` RM from the Welcome is served; a ScoreTask for an RM not in the
Welcome gets a failure result.
"""

import math
import time

import pytest
import zmq

from conftest import envelope, kind_of, pb

SECRET_ENV = "LASER_HOSTILE_API_KEY"
SECRET_VALUE = "hostile-secret-4f1c9a"


class FakeCoordinator:
    def __init__(self, lab):
        self.sock, self.endpoint = lab.router()
        self.ident = None
        self.received = []

    def recv(self, timeout):
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return None, None
        frames = self.sock.recv_multipart()
        env = pb.Envelope()
        env.ParseFromString(frames[-1])
        self.received.append(env)
        return frames[0], env

    def wait_hello(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ident, env = self.recv(deadline - time.monotonic())
            if env is not None and kind_of(env) == "hello":
                self.ident = ident
                return env.hello
        raise AssertionError(f"the worker sent no Hello within {timeout} s")

    def send(self, env):
        self.sock.send_multipart([self.ident, env.SerializeToString()])

    def welcome(self, specs):
        self.send(envelope(welcome=pb.Welcome(coordinator_id="fake-coordinator", heartbeat_interval_ms=1000,
                                              liveness=5, reward_models=specs, run_seed=7)))

    def pump(self, seconds, stop=lambda env: False):
        """Receive for up to `seconds`, heartbeating the worker; returns the first env (or None, when nothing
        arrived) for which stop(env) is true; None after `seconds`."""
        deadline = time.monotonic() + seconds
        next_beat = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_beat:
                self.send(envelope(heartbeat=pb.Heartbeat()))
                next_beat = time.monotonic() + 0.5
            _, env = self.recv(min(0.1, max(0.0, deadline - time.monotonic())))
            if stop(env):      # called with None too, so "the worker exited" ends the wait at once
                return env
        return None


def spec(name, kind, **params):
    return pb.RewardModelSpec(name=name, kind=kind,
                              params=[pb.Param(key=k, value=v) for k, v in params.items()])


def score_task(task_id, rm, items):
    return envelope(score_task=pb.ScoreTask(
        task_id=task_id, attempt=1, reward_model=rm, iteration=1,
        items=[pb.ScoreItem(prompt_id=f"p{i}", prompt=f"prompt {i}", candidates=cands)
               for i, cands in enumerate(items)]))


ITEMS = [["a", "bbb", "cc"], ["dddd", "e"]]


def start_worker(lab, fake, offered, env=None):
    w = lab.worker(fake.endpoint, "w", extra=["--rm", offered], give_up_after=20, env=env)
    h = fake.wait_hello()
    assert h.worker_id == "w"
    return w, h


def assert_refused(worker, rm_name, also=(), within=8.0):
    """The worker exits non-zero within `within` seconds and its stderr names the RM."""
    rc = worker.wait(within)
    err = worker.stderr_text()
    assert rc is not None, f"worker still running {within} s after the hostile Welcome (it accepted it):\n{err[-2000:]}"
    assert rc != 0, f"worker exited 0 after a hostile Welcome:\n{err[-2000:]}"
    assert rm_name in err, f"worker's stderr does not name RM {rm_name!r}:\n{err[-2000:]}"
    for word in also:
        assert word in err, f"worker's stderr does not mention {word!r}:\n{err[-2000:]}"


# 19.1 (a): a subprocess RM pushed by the coordinator must never be started.
@pytest.mark.parametrize("rm_name", ["length", "judge-7"])
def test_welcome_with_subprocess_rm_is_refused(lab, rm_name):
    marker = lab.dir / f"pwned-{rm_name}"
    fake = FakeCoordinator(lab)
    worker, h = start_worker(lab, fake, offered=rm_name)
    assert list(h.reward_models) == [rm_name]
    # The command both creates the marker and then behaves like a JSON-lines RM (it never gets that far).
    command = f"touch {marker}; while read line; do echo '{{\"scores\": [[0,0,0],[0,0]]}}'; done"
    fake.welcome([spec(rm_name, "subprocess", command=command, timeout_ms="5000")])
    # An attacker follows up with work for it at once, to trigger a lazily started backend.
    fake.send(score_task(1, rm_name, ITEMS))
    fake.pump(5.0, stop=lambda env: not worker.alive())
    time.sleep(0.5)  # a started child would have touched the marker by now
    assert not marker.exists(), "the worker ran a command that came from the coordinator"
    assert_refused(worker, rm_name, also=("subprocess",), within=3.0)
    results = [e for e in fake.received if kind_of(e) == "score_result"]
    assert not any(r.score_result.HasField("success") for r in results), "worker scored with a pushed subprocess RM"


# 19.1 (b): an http RM pushed by the coordinator must never call its URL (nor read the named env var).
@pytest.mark.parametrize("rm_name", ["length", "judge-7"])
def test_welcome_with_http_rm_is_refused(lab, rm_name):
    listener = lab.http_recorder()
    fake = FakeCoordinator(lab)
    worker, _ = start_worker(lab, fake, offered=rm_name, env={SECRET_ENV: SECRET_VALUE})
    fake.welcome([spec(rm_name, "http", url=f"{listener.url}/score", api="openrlhf", api_key_env=SECRET_ENV,
                       timeout_ms="2000", retries="0")])
    fake.send(score_task(1, rm_name, ITEMS))
    fake.pump(5.0, stop=lambda env: not worker.alive())
    time.sleep(0.5)
    leaked = any(SECRET_VALUE in str(r["headers"]) or SECRET_VALUE.encode() in r["body"] for r in listener.requests)
    assert not listener.requests, (f"the worker called a URL that came from the coordinator "
                                   f"({len(listener.requests)} request(s); secret leaked: {leaked})")
    assert_refused(worker, rm_name, also=("http",), within=3.0)


# 19.1 (c): an RM the worker never offered (even a harmless built-in kind) is refused.
def test_welcome_with_rm_not_offered_is_refused(lab):
    fake = FakeCoordinator(lab)
    worker, _ = start_worker(lab, fake, offered="length")
    fake.welcome([spec("other", "length")])
    fake.send(score_task(1, "other", ITEMS))
    scored = fake.pump(5.0, stop=lambda env: (kind_of(env) == "score_result" and env.score_result.HasField("success"))
                       or not worker.alive())
    assert not (scored is not None and kind_of(scored) == "score_result"), "worker served an RM it never offered"
    assert_refused(worker, "other", within=3.0)


# 19.1 (c), mixed: the offered RM is in the Welcome, plus an extra one: still refused as a whole.
def test_welcome_with_extra_rm_not_offered_is_refused(lab):
    fake = FakeCoordinator(lab)
    worker, _ = start_worker(lab, fake, offered="length")
    fake.welcome([spec("length", "length"), spec("other", "length")])
    fake.pump(5.0, stop=lambda env: not worker.alive())
    assert_refused(worker, "other", within=3.0)


# 19.1 positive control: a built-in kind from the Welcome is served, with the right shape and values.
# Also: a ScoreTask for an RM that was not in the Welcome gets a failure result and nothing runs.
def test_builtin_rm_from_welcome_is_served_and_unknown_rm_task_fails(lab):
    fake = FakeCoordinator(lab)
    worker, _ = start_worker(lab, fake, offered="length")
    fake.welcome([spec("length", "length")])
    fake.send(score_task(11, "length", ITEMS))
    env = fake.pump(8.0, stop=lambda e: kind_of(e) == "score_result" or not worker.alive())
    assert env is not None and kind_of(env) == "score_result", \
        f"no ScoreResult from the worker:\n{worker.tail()}"
    r = env.score_result
    assert r.task_id == 11 and r.attempt == 1
    assert r.HasField("success"), f"length RM failed: {r.failure.message}"
    assert [len(i.scores) for i in r.success.items] == [len(c) for c in ITEMS]
    for item, cands in zip(r.success.items, ITEMS):
        for s, c in zip(item.scores, cands):
            assert math.isclose(s, -math.log(1 + len(c)), rel_tol=1e-9), (s, c)

    # A task for an RM the worker did not build: a failure, and the worker stays up.
    fake.send(score_task(12, "not-in-welcome", ITEMS))
    env = fake.pump(8.0, stop=lambda e: kind_of(e) == "score_result" or not worker.alive())
    assert env is not None and kind_of(env) == "score_result", \
        f"no ScoreResult for a task of an unknown RM:\n{worker.tail()}"
    r = env.score_result
    assert r.task_id == 12
    assert r.HasField("failure") and not r.HasField("success")
    assert "not-in-welcome" in r.failure.message
    assert worker.alive(), "worker died on a task for an RM it does not serve"

    # Still serving after that, and a Shutdown ends it cleanly.
    fake.send(score_task(13, "length", ITEMS))
    env = fake.pump(8.0, stop=lambda e: kind_of(e) == "score_result" or not worker.alive())
    assert env is not None and env.score_result.task_id == 13 and env.score_result.HasField("success")
    fake.send(envelope(shutdown=pb.Shutdown(reason="test over")))
    assert worker.wait(10) == 0


# 19.1 (a), wrapped: a `noisy` (or `simulated-latency`) RM whose base is a backend kind, pushed by the
# coordinator, is a backend too: refused, nothing started.
@pytest.mark.parametrize("wrapper", ["noisy", "simulated-latency"])
def test_welcome_with_wrapped_subprocess_rm_is_refused(lab, wrapper):
    marker = lab.dir / f"pwned-{wrapper}"
    fake = FakeCoordinator(lab)
    worker, _ = start_worker(lab, fake, offered="length")
    extra = {"sigma": "0"} if wrapper == "noisy" else {"ms": "0"}
    fake.welcome([spec("length", wrapper, base="subprocess", command=f"touch {marker}", **extra)])
    fake.send(score_task(1, "length", ITEMS))
    fake.pump(5.0, stop=lambda env: not worker.alive())
    time.sleep(0.5)
    assert not marker.exists(), f"the worker ran a command pushed inside a {wrapper} wrapper"
    assert_refused(worker, "length", within=3.0)


# 19.1: an RM kind the worker does not know is refused (never "best effort").
def test_welcome_with_unknown_kind_is_refused(lab):
    fake = FakeCoordinator(lab)
    worker, _ = start_worker(lab, fake, offered="length")
    fake.welcome([spec("length", "exec", command="true")])
    fake.pump(5.0, stop=lambda env: not worker.alive())
    assert_refused(worker, "length", within=3.0)


# ---------------------------------------------------------------------------------------------------
# 19.1 with the worker's own definitions (`laser worker --rm-config FILE`).
# ---------------------------------------------------------------------------------------------------

LOCAL_RM = r'''
import json, sys
open(sys.argv[1], "w").close()          # proves the LOCAL command ran
for line in sys.stdin:
    req = json.loads(line)
    scores = [[float(len(c)) for c in p["candidates"]] for p in req["prompts"]]
    sys.stdout.write(json.dumps({"id": req["id"], "scores": scores}) + "\n")
    sys.stdout.flush()
'''


def write_rm_config(lab, body):
    path = lab.dir / "worker-rms.yaml"
    path.write_text("reward_models:\n" + body)
    return path


def local_subprocess_config(lab):
    script = lab.dir / "local_rm.py"
    script.write_text(LOCAL_RM)
    local_marker = lab.dir / "local-ran"
    cfg = write_rm_config(lab, f'  - name: "judge"\n    kind: "subprocess"\n    params:\n'
                               f'      command: "python3 {script} {local_marker}"\n      timeout_ms: "10000"\n')
    return cfg, local_marker


# The coordinator names a locally defined subprocess RM but sends hostile params: they are never used.
# Either the worker serves the RM from its own definition, or it refuses; it never runs the pushed command.
def test_rm_config_local_definition_wins_over_pushed_params(lab):
    cfg, local_marker = local_subprocess_config(lab)
    pushed_marker = lab.dir / "pwned-pushed"
    fake = FakeCoordinator(lab)
    worker = lab.worker(fake.endpoint, "w", extra=["--rm-config", cfg], give_up_after=20)
    h = fake.wait_hello()
    assert list(h.reward_models) == ["judge"], f"offer should be the --rm-config names: {list(h.reward_models)}"
    fake.welcome([spec("judge", "subprocess", command=f"touch {pushed_marker}")])
    fake.send(score_task(21, "judge", ITEMS))
    env = fake.pump(10.0, stop=lambda e: kind_of(e) == "score_result" or not worker.alive())
    time.sleep(0.3)
    assert not pushed_marker.exists(), "the worker ran the command the coordinator pushed"
    if worker.alive():
        assert env is not None and env.score_result.HasField("success"), \
            f"no successful result from the local RM: {env}\n{worker.tail()}"
        assert local_marker.exists(), "the result did not come from the local definition"
        assert [list(i.scores) for i in env.score_result.success.items] == [[float(len(c)) for c in cands]
                                                                             for cands in ITEMS]
    else:
        assert worker.poll() != 0


# Same name, other kind than the worker's own definition: refused, message names both kinds.
def test_rm_config_kind_mismatch_is_refused(lab):
    cfg, local_marker = local_subprocess_config(lab)
    listener = lab.http_recorder()
    fake = FakeCoordinator(lab)
    worker = lab.worker(fake.endpoint, "w", extra=["--rm-config", cfg], give_up_after=20)
    fake.wait_hello()
    fake.welcome([spec("judge", "http")])
    fake.send(score_task(1, "judge", ITEMS))
    fake.pump(5.0, stop=lambda env: not worker.alive())
    assert not listener.requests
    assert not local_marker.exists(), "the worker served an RM whose kind differs from its own definition"
    assert_refused(worker, "judge", also=("subprocess", "http"), within=3.0)


# Built-in kind defined locally with other params than the coordinator's: refused (the same RM must
# score the same everywhere).
def test_rm_config_builtin_params_mismatch_is_refused(lab):
    cfg = write_rm_config(lab, '  - name: "length"\n    kind: "length"\n    params:\n      prefer: "shorter"\n')
    fake = FakeCoordinator(lab)
    worker = lab.worker(fake.endpoint, "w", extra=["--rm-config", cfg], give_up_after=20)
    fake.wait_hello()
    fake.welcome([spec("length", "length", prefer="longer")])
    fake.send(score_task(1, "length", ITEMS))
    scored = fake.pump(5.0, stop=lambda e: (kind_of(e) == "score_result" and e.score_result.HasField("success"))
                       or not worker.alive())
    assert not (scored is not None and kind_of(scored) == "score_result"), \
        "the worker scored with params that differ from its own definition"
    assert_refused(worker, "length", within=3.0)
