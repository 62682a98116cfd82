"""Rogue peers against a real `laser coordinator` with honest `laser worker`s (design-trust.md B-F).

Every rogue is a raw DEALER speaking proto/laser.proto. Issue items covered (one per test, marked):
  19.2  rogue workers with huge slots that fail every task cannot fail the run or change its output
  14.1  forged ScoreResults for tasks the sender does not hold are dropped (foreign_results)
  14.2  a registered worker sending an invalid message (no outcome / several frames) is disconnected
  19.3  losses are bounded (reward.max_abs_loss); strangers cannot report losses
  19.4  one trainer at a time; only the trainer sent a batch may report its loss; worker ids cannot be
        taken over while their holder is alive
  19.5  bounded ids/labels/RM lists; strangers do not grow the coordinator's memory or /metrics
  19.6  control characters in peer text are never printed raw
  19.11 strings containing NUL are malformed (never registered under a truncated id)
"""

import time

import pytest

from conftest import (RogueLoop, batch_feedback, batch_files, envelope, heartbeat, hello, http_get, kind_of, pb,
                      score_failure, score_success, set_network, set_reward_source, task_shape, trainer_hello,
                      wait_for, with_latency)

RUN_TIMEOUT = 40.0


def clean_run(lab, config):
    """The reference: the same config with one honest worker. Returns its batch files."""
    coord = lab.coordinator(config)
    lab.worker(coord.endpoint, "clean-w1")
    rc = coord.wait(RUN_TIMEOUT)
    assert rc == 0, f"the clean reference run did not finish (rc {rc}):\n{coord.tail()}"
    files = batch_files(coord.run_dir)
    assert files, "the clean run wrote no batch files"
    return files


def assert_same_output(coord, reference):
    got = batch_files(coord.run_dir)
    assert sorted(got) == sorted(reference), f"batch files differ: {sorted(got)} vs {sorted(reference)}"
    differing = [name for name in reference if got[name] != reference[name]]
    assert not differing, f"batch files differ from the clean run: {differing}"


def welcomed(reply, what):
    assert reply is not None, f"{what}: no answer to Hello"
    assert kind_of(reply) == "welcome", f"{what}: expected Welcome, got {kind_of(reply)}: {reply}"


def refused(reply):
    """A Reject, or (for messages the coordinator drops as malformed) silence; never a Welcome."""
    return reply is None or kind_of(reply) == "reject"


# ---------------------------------------------------------------------------------------------------
# 19.2: three rogue workers declare slots=1000 and fail every task they get.
# ---------------------------------------------------------------------------------------------------

def test_19_2_rogue_failing_workers_cannot_fail_or_change_the_run(lab):
    # 30 ms per prompt: the run lasts a few seconds, so the rogues (joining right after the honest worker)
    # get a share of every batch's tasks.
    config = lab.config(lambda t: with_latency(t, 30), prompts_per_task=32)
    reference = clean_run(lab, config)

    coord = lab.coordinator(config)
    lab.worker(coord.endpoint, "honest-1")
    lab.wait_joined(coord, "honest-1")
    loops = []
    failed = []

    def fail_everything(peer):
        env = peer.recv(0.05)
        if env is not None and kind_of(env) == "score_task":
            t = env.score_task
            peer.send(score_failure(t.task_id, t.attempt, "rogue: RM exploded"))
            failed.append(t.task_id)
        if time.monotonic() - getattr(peer, "last_beat", 0) > 0.5:
            peer.send(heartbeat())
            peer.last_beat = time.monotonic()

    for i in range(3):
        rogue = lab.peer(coord.endpoint)
        welcomed(rogue.hello(f"rogue-{i}", slots=1000), f"rogue-{i}")
        loop = RogueLoop(rogue, fail_everything)
        loop.start()
        loops.append(loop)
    rc = coord.wait(RUN_TIMEOUT)
    for loop in loops:
        loop.stop()
    assert rc == 0, f"rogue failures failed the run (rc {rc}; rogues failed {len(failed)} tasks):\n{coord.tail()}"
    assert failed, "the rogues got no task (the run ended before they joined): the test proved nothing"
    assert (coord.run_dir / "summary.json").exists(), "no summary.json"
    assert_same_output(coord, reference)
    counters = coord.counters()
    assert counters.get("slots_capped", 0) >= 1, f"slots=1000 was not capped: {counters}"
    assert counters.get("workers_quarantined", 0) >= 1, f"no rogue was quarantined: {counters}"


# ---------------------------------------------------------------------------------------------------
# 14.1: a registered worker that never answers its own task forges successes for tasks it does not hold.
# ---------------------------------------------------------------------------------------------------

def test_14_1_forged_results_for_tasks_not_held_are_dropped(lab):
    # A short lease so the task the rogue sits on goes to the honest worker quickly.
    config = lab.config(lambda t: set_network(t, "lease_ms", 2000), prompts_per_task=32)
    reference = clean_run(lab, config)

    coord = lab.coordinator(config)
    rogue = lab.peer(coord.endpoint)
    welcomed(rogue.hello("forger", slots=1), "forger")
    # The rogue is the only worker: the first task comes to it. It never answers it, so (credit: "the first
    # holder keeps its slot until it answers or dies") it never gets another one. Only then does it start
    # forging: a forged result for a task it held itself would be a legitimate (if wrong) answer.
    first = rogue.recv_kind("score_task", 5.0)
    assert first is not None, f"the rogue got no task:\n{coord.tail()}"
    held = {first.score_task.task_id}
    extra_tasks = []
    shapes = [task_shape(first.score_task), [6, 6, 6, 6], [6, 6], [4, 4, 4, 4], [8, 8, 8, 8]]
    sent = [0]

    def forge(peer):
        env = peer.recv(0.01)
        if env is not None and kind_of(env) == "score_task":
            held.add(env.score_task.task_id)         # never answered
            extra_tasks.append(env.score_task.task_id)
        # Task ids are (incarnation << 32) | n, n from 1 up; incarnation 0 for a fresh run.
        for n in range(1, 41):
            if n in held:
                continue
            for attempt in (1, 0, 2):
                for k, shape in enumerate(shapes[:3]):
                    # Scores that invert any sensible order (the real RMs prefer short / consistent ones).
                    peer.send(score_success(n, attempt, shape,
                                            lambda i, c, k=k: (c * 37 + i * 11 + k * 5) % 17 - 8.0))
                    sent[0] += 1
        if time.monotonic() - getattr(peer, "last_beat", 0) > 0.5:
            peer.send(heartbeat())
            peer.last_beat = time.monotonic()

    loop = RogueLoop(rogue, forge)
    loop.start()
    time.sleep(0.3)
    lab.worker(coord.endpoint, "honest-1")
    rc = coord.wait(RUN_TIMEOUT)
    loop.stop()
    assert loop.error is None, loop.error
    assert not extra_tasks, (f"the coordinator sent tasks {extra_tasks} to a slots=1 worker still holding task "
                             f"{first.score_task.task_id} (credit violated; forgeries for them may have counted)")
    assert rc == 0, f"the run did not complete (rc {rc}):\n{coord.tail()}"
    assert_same_output(coord, reference)
    counters = coord.counters()
    assert sent[0] > 0
    assert counters.get("foreign_results", 0) > 0, f"forged results were not counted as foreign: {counters}"


# ---------------------------------------------------------------------------------------------------
# 14.2: a registered worker sends an invalid message in reply to its task -> Disconnect, run completes.
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["no_outcome", "multi_frame"])
def test_14_2_invalid_message_from_worker_gets_disconnect(lab, variant):
    config = lab.config()
    coord = lab.coordinator(config)
    rogue = lab.peer(coord.endpoint)
    welcomed(rogue.hello("broken", slots=1), "broken")
    task_env = rogue.recv_kind("score_task", 5.0)
    assert task_env is not None, f"the rogue got no task:\n{coord.tail()}"
    t = task_env.score_task
    if variant == "no_outcome":
        # A ScoreResult with neither success nor failure set.
        rogue.send(envelope(score_result=pb.ScoreResult(task_id=t.task_id, attempt=t.attempt, elapsed_us=5)))
    else:
        good = score_failure(t.task_id, t.attempt, "x").SerializeToString()
        rogue.send_frames([good, good])
    # Keep heartbeating: any Disconnect within 3 s is the answer to the bad message, not a liveness expiry.
    reply = rogue.recv_kind("disconnect", 3.0, heartbeat_every=0.3)
    rogue.close()
    lab.worker(coord.endpoint, "honest-1")
    rc = coord.wait(RUN_TIMEOUT)
    assert reply is not None, f"no Disconnect after an invalid message ({variant}):\n{coord.tail()}"
    assert rc == 0, f"the run did not complete (rc {rc}):\n{coord.tail()}"


# ---------------------------------------------------------------------------------------------------
# 19.3: bounded losses; a stranger's losses are refused.
# ---------------------------------------------------------------------------------------------------

def test_19_3_stranger_cannot_report_losses(lab):
    coord = lab.stalled_run()
    rogue = lab.peer(coord.endpoint)
    answers = []
    for g in (0, 1, 2):
        rogue.send(batch_feedback(g, -1e308))
        ack = rogue.recv_kind("feedback_ack", 3.0, heartbeat_every=0)
        answers.append(ack)
        assert ack is not None, f"no FeedbackAck for batch {g}"
        assert not ack.feedback_ack.accepted, f"a stranger's loss -1e308 for batch {g} was accepted"


def test_19_3_registered_trainer_loss_out_of_bounds_is_refused(lab):
    coord = lab.stalled_run()
    trainer = lab.peer(coord.endpoint)
    trainer.send(trainer_hello("t1", window=1))
    w = trainer.recv_kind(("trainer_welcome", "reject"), 5.0, heartbeat_every=0)
    assert w is not None and kind_of(w) == "trainer_welcome", f"trainer not welcomed: {w}"
    assert w.trainer_welcome.wants_loss
    batch = trainer.recv_kind("preference_batch", 5.0)
    assert batch is not None and batch.preference_batch.global_batch == 0
    for loss in (-1e308, 1e308, 2e6):
        trainer.send(batch_feedback(0, loss))
        ack = trainer.recv_kind("feedback_ack", 3.0)
        assert ack is not None, f"no FeedbackAck for loss {loss}"
        assert not ack.feedback_ack.accepted, f"loss {loss} was accepted"
        assert "max_abs_loss" in ack.feedback_ack.reason, f"reason does not name the bound: {ack.feedback_ack.reason!r}"
    # Positive control: a sane loss from the trainer is accepted.
    trainer.send(batch_feedback(0, 0.25))
    ack = trainer.recv_kind("feedback_ack", 3.0)
    assert ack is not None and ack.feedback_ack.accepted, f"a sane loss was refused: {ack}"


# ---------------------------------------------------------------------------------------------------
# 19.4: one trainer at a time; only it may report its batches' losses.
# ---------------------------------------------------------------------------------------------------

def test_19_4_second_trainer_rejected_and_non_trainer_feedback_refused(lab):
    coord = lab.stalled_run()
    first = lab.peer(coord.endpoint)
    first.send(trainer_hello("trainer-a", window=1))
    w = first.recv_kind(("trainer_welcome", "reject"), 5.0, heartbeat_every=0)
    assert w is not None and kind_of(w) == "trainer_welcome", f"first trainer not welcomed: {w}"
    assert first.recv_kind("preference_batch", 5.0) is not None, "first trainer got no batch"
    first.send(heartbeat())

    second = lab.peer(coord.endpoint)
    second.send(trainer_hello("trainer-b", window=1))
    r = second.recv_kind(("trainer_welcome", "reject"), 3.0, heartbeat_every=0)
    first.send(heartbeat())
    assert r is not None, "no answer to the second TrainerHello"
    assert kind_of(r) == "reject", "a second trainer replaced the live one (TrainerWelcome)"
    assert r.reject.retry_after_ms > 0, f"Reject without retry_after_ms: {r.reject}"

    # A connection that is not the trainer (never said TrainerHello) reports a sane loss for batch 0.
    stranger = lab.peer(coord.endpoint)
    stranger.send(batch_feedback(0, 0.5))
    ack = stranger.recv_kind("feedback_ack", 3.0, heartbeat_every=0)
    first.send(heartbeat())
    assert ack is not None, "no FeedbackAck to a non-trainer"
    assert not ack.feedback_ack.accepted, "a non-trainer connection's loss was accepted"

    # The rejected second trainer may not report either.
    second.send(batch_feedback(0, 0.5))
    ack = second.recv_kind("feedback_ack", 3.0, heartbeat_every=0)
    first.send(heartbeat())
    assert ack is not None and not ack.feedback_ack.accepted, "the rejected trainer's loss was accepted"

    # Positive control: the live trainer's loss is accepted.
    first.send(batch_feedback(0, 0.5))
    ack = first.recv_kind("feedback_ack", 3.0)
    assert ack is not None and ack.feedback_ack.accepted, f"the trainer's own loss was refused: {ack}"


# ---------------------------------------------------------------------------------------------------
# 19.4: a live worker's id cannot be taken over by a new connection.
# ---------------------------------------------------------------------------------------------------

def test_19_4_worker_id_takeover_is_rejected_while_holder_lives(lab):
    config = lab.config(lambda t: set_reward_source(t, "trainer-loss"))
    coord = lab.coordinator(config)
    victim = lab.worker(coord.endpoint, "w1")
    joined = wait_for(lambda: "worker w1 joined" in coord.stderr_text(), 15.0, interval=0.005)
    t_join = time.monotonic()
    assert joined, f"w1 did not join:\n{coord.tail()}"

    # Right after the victim's Welcome (before it has sent anything else).
    rogue = lab.peer(coord.endpoint)
    r1 = rogue.hello("w1", slots=4, timeout=3.0)
    rogue.close()

    # After 2.6 s: the victim has been heartbeating all along.
    time.sleep(max(0.0, 2.6 - (time.monotonic() - t_join)))
    rogue2 = lab.peer(coord.endpoint)
    r2 = rogue2.hello("w1", slots=4, timeout=3.0)
    rogue2.close()

    for when, r in (("right after the Welcome", r1), ("after 2.6 s", r2)):
        assert r is not None, f"{when}: no answer to a Hello with a live worker's id"
        assert kind_of(r) == "reject", f"{when}: a new connection took over live worker w1 (got {kind_of(r)})"
        assert r.reject.retry_after_ms > 0, f"{when}: Reject without retry_after_ms: {r.reject}"
    assert victim.alive(), f"the victim worker died:\n{victim.tail()}"


# ---------------------------------------------------------------------------------------------------
# 19.5: bounded ids, labels and RM lists.
# ---------------------------------------------------------------------------------------------------

def test_19_5_oversized_or_control_character_fields_are_rejected(lab):
    coord = lab.stalled_run()
    cases = {
        "worker_id of 129 bytes": dict(worker_id="a" * 129),
        "worker_id of 129 bytes (multi-byte UTF-8)": dict(worker_id="é" * 64 + "x"),
        "worker_id with \\x01": dict(worker_id="bad\x01id"),
        "worker_id with TAB": dict(worker_id="bad\tid"),
        "worker_id with DEL": dict(worker_id="bad\x7fid"),
        "worker_id with C1 control U+009B": dict(worker_id="bad\u009bid"),
        "33 labels": dict(worker_id="many-labels", labels=[f"l{i}" for i in range(33)]),
        "label of 129 bytes": dict(worker_id="long-label", labels=["x" * 129]),
        "257 reward_models": dict(worker_id="many-rms", reward_models=["length"] * 257),
    }
    problems = []
    for what, fields in cases.items():
        peer = lab.peer(coord.endpoint)
        r = peer.hello(fields.pop("worker_id"), slots=1, timeout=3.0, **fields)
        peer.close()
        if r is None:
            problems.append(f"{what}: no answer (expected Reject)")
        elif kind_of(r) != "reject":
            problems.append(f"{what}: got {kind_of(r)}, expected Reject")
        elif not r.reject.reason:
            problems.append(f"{what}: Reject without a reason")

    # trainer_id has the same limits.
    for what, tid in (("trainer_id of 129 bytes", "t" * 129), ("trainer_id with ESC", "t\x1b[2J")):
        peer = lab.peer(coord.endpoint)
        peer.send(trainer_hello(tid))
        r = peer.recv_kind(("trainer_welcome", "reject"), 3.0, heartbeat_every=0)
        peer.close()
        if r is None or kind_of(r) != "reject":
            problems.append(f"{what}: got {kind_of(r)}, expected Reject")

    # Positive controls at the limits: 128 bytes, 32 labels of 128 bytes.
    peer = lab.peer(coord.endpoint)
    r = peer.hello("a" * 128, slots=1, labels=["y" * 128] * 32, timeout=3.0)
    peer.close()
    if r is None or kind_of(r) != "welcome":
        problems.append(f"worker_id of 128 bytes with 32 labels of 128 bytes: got {kind_of(r)}, expected Welcome")
    assert not problems, "\n".join(problems)


def test_19_5_strangers_with_huge_ids_do_not_grow_memory(lab):
    coord = lab.stalled_run()
    big = "x" * (60 * 1024)

    def one_shot_peers(first, count, wave=20):
        """count peers, `wave` at a time: each says Hello with a 60 KiB id, waits briefly for the answer
        (Reject or Welcome; a dropped message gets none) and hangs up."""
        for start in range(first, first + count, wave):
            peers = [lab.peer(coord.endpoint) for _ in range(wave)]
            for i, p in enumerate(peers):
                p.send(hello(f"{start + i:05d}-{big}", slots=1))
            deadline = time.monotonic() + 2.0
            pending = list(peers)
            while pending and time.monotonic() < deadline:
                pending = [p for p in pending if p.recv(0.002) is None]
            for p in peers:
                p.close()
            lab.peers = [p for p in lab.peers if not p.closed]

    # Warm-up: the allocator and ZeroMQ reach their working size for this traffic.
    one_shot_peers(0, 60)
    time.sleep(1.0)
    before = coord.rss_kib()
    one_shot_peers(1000, 300)
    time.sleep(1.5)
    assert coord.alive(), f"coordinator died:\n{coord.tail()}"
    after = coord.rss_kib()
    grown_mib = (after - before) / 1024
    assert grown_mib <= 20, (f"coordinator RSS grew by {grown_mib:.1f} MiB (from {before // 1024} MiB) for 300 "
                             f"one-shot peers with 60 KiB ids")


def test_19_5_metrics_forget_gone_workers(lab):
    def t(text):
        text = set_network(text, "heartbeat_ms", 200)
        text = set_network(text, "liveness", 3)
        return text + "metrics:\n  port: 0\n"
    coord = lab.stalled_run(transform=t)
    assert coord.find_metrics_url(), f"no metrics URL printed:\n{coord.tail()}"
    # Warm-up: a few register/disconnect cycles, so every series that exists once anything happened
    # (workers_lost_total, ...) is there before the baseline.
    for i in range(3):
        p = lab.peer(coord.endpoint)
        p.hello(f"warm-{i}", slots=1, timeout=3.0)
        p.close()
    time.sleep(2.0)
    http_get(coord.metrics_url)
    before = http_get(coord.metrics_url).splitlines()
    for i in range(100):
        p = lab.peer(coord.endpoint)
        r = p.hello(f"cycle-{i:03d}", slots=1, timeout=3.0)
        p.close()
        assert r is not None and kind_of(r) == "welcome", f"cycle {i}: got {kind_of(r)}"
    # Dead after liveness x heartbeat = 0.6 s of silence.
    time.sleep(2.5)
    after = http_get(coord.metrics_url).splitlines()
    leftover = [line for line in after if "cycle-" in line]
    assert len(after) - len(before) <= 5 and not leftover, \
        (f"/metrics grew from {len(before)} to {len(after)} lines after 100 register/disconnect cycles; "
         f"{len(leftover)} lines still name gone workers, e.g. {leftover[:3]}")


# ---------------------------------------------------------------------------------------------------
# 19.6: control characters in peer text are never printed raw.
# ---------------------------------------------------------------------------------------------------

def test_19_6_control_characters_never_reach_stderr_raw(lab):
    coord = lab.stalled_run()
    attempts = [
        dict(worker_id="evil\x1b[2Jclear"),
        dict(worker_id="evil\nFAKE-LOG-LINE worker admin joined"),
        dict(worker_id="evil\rFAKE-LOG-LINE carriage"),
        dict(worker_id="labelled", labels=["gpu\x1b[2J", "x\nFAKE-LOG-LINE label"]),
        dict(worker_id="rm-named", reward_models=["length\x1b[2J", "x\nFAKE-LOG-LINE rm"]),
    ]
    for fields in attempts:
        p = lab.peer(coord.endpoint)
        p.hello(fields.pop("worker_id"), slots=1, timeout=2.0, **fields)
        p.close()
    # 19.6: peer strings are cut to 200 characters in log lines.
    p = lab.peer(coord.endpoint)
    p.hello("long-" + "Z" * 10000, slots=1, timeout=2.0)
    p.close()
    p = lab.peer(coord.endpoint)
    p.send(trainer_hello("trainer\x1b[2J\nFAKE-LOG-LINE trainer"))
    p.recv_kind(("trainer_welcome", "reject"), 2.0, heartbeat_every=0)
    p.close()
    time.sleep(0.5)
    err = coord.stderr_bytes()
    assert b"\x1b" not in err, "an ESC from a peer reached the coordinator's stderr raw"
    assert b"\r" not in err, "a carriage return from a peer reached the coordinator's stderr raw"
    forged = [line for line in err.split(b"\n") if line.startswith(b"FAKE-LOG-LINE")]
    assert not forged, f"a peer forged log lines with a newline: {forged}"
    assert b"Z" * 201 not in err, "a 10,000-character worker id was logged uncut (limit: 200 characters)"


# ---------------------------------------------------------------------------------------------------
# 19.11: a NUL inside a string makes the message malformed; never registered under the truncated id.
# ---------------------------------------------------------------------------------------------------

def test_19_11_nul_in_worker_id_is_not_registered_as_prefix(lab):
    coord = lab.stalled_run()
    ghost = lab.peer(coord.endpoint)
    r = ghost.hello("ghost\x00hidden", slots=1, timeout=2.0)
    assert refused(r), f"a Hello with a NUL in worker_id got {kind_of(r)}"
    time.sleep(0.3)
    assert "worker ghost joined" not in coord.stderr_text(), "registered as 'ghost'"
    # Keep the NUL peer alive and claim the plain id from another connection: nobody holds it.
    ghost.send(heartbeat())
    real = lab.peer(coord.endpoint)
    r2 = real.hello("ghost", slots=1, timeout=3.0)
    assert r2 is not None and kind_of(r2) == "welcome", \
        f"the id 'ghost' is held after a NUL Hello (got {kind_of(r2)}: {r2})"
