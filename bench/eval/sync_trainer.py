"""A synchronous trainer connection for the evaluation: the same messages as
clients/python/laser_trainer.py (TrainerHello, PreferenceBatch, BatchFeedback, Heartbeat), on one
thread, so that a loss leaves the moment the step is done.

Why not LaserTrainer: its I/O thread polls the socket with a 50 ms timeout and only then looks at the
losses to send, so every batch waits up to 50 ms for its loss to leave. For a GPU trainer that is
noise; for the stand-in policy (a step takes about a millisecond) it was the whole run time and
would have hidden the RM latencies this evaluation measures.
"""

import time

import zmq

import laser_pb2 as pb

PROTOCOL_VERSION = 1


def _envelope(**body):
    env = pb.Envelope(protocol_version=PROTOCOL_VERSION)
    for name, message in body.items():
        getattr(env, name).CopyFrom(message)
    return env.SerializeToString()


def train(endpoint, step, trainer_id="eval", give_up_after=60.0, alive=lambda: True, report=True, on_probe=None):
    """Calls step(batch) -> loss, or a dict {"loss", "loss_after" (prediction-gain), "probe_before",
    "probe_after" (probe-progress)}, for every PreferenceBatch; on_probe(pairs) gets probe-progress's
    ProbeSet until the coordinator shuts down; returns
    the refusals [(global_batch, reason)]. alive() false (the coordinator's process has ended) also ends it.
    report=False: train on the batches but send no losses (a run whose reward is label-based streams
    its batches to the trainer and takes no losses)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    hello = _envelope(trainer_hello=pb.TrainerHello(trainer_id=trainer_id, window=1, software_version="bench-eval"))
    sock.send(hello)
    heartbeat_s = 1.0
    last_heard = last_sent = time.monotonic()
    refusals = []
    try:
        while True:
            if sock.poll(int(heartbeat_s * 1000 / 2), zmq.POLLIN):
                env = pb.Envelope()
                env.ParseFromString(sock.recv())
                last_heard = time.monotonic()
                kind = env.WhichOneof("body")
                if kind == "trainer_welcome":
                    heartbeat_s = max(0.01, env.trainer_welcome.heartbeat_interval_ms / 1000.0)
                elif kind == "preference_batch":
                    result = step(env.preference_batch)
                    if not report:
                        continue
                    r = result if isinstance(result, dict) else {"loss": result}
                    feedback = pb.BatchFeedback(global_batch=env.preference_batch.global_batch, loss=float(r["loss"]))
                    if r.get("loss_after") is not None:
                        feedback.loss_after = float(r["loss_after"])
                        feedback.has_loss_after = True
                    if r.get("probe_before") is not None:
                        feedback.probe_loss_before = float(r["probe_before"])
                        feedback.probe_loss_after = float(r["probe_after"])
                        feedback.has_probe_losses = True
                    sock.send(_envelope(batch_feedback=feedback))
                    last_sent = time.monotonic()
                elif kind == "probe_set":
                    if on_probe:
                        on_probe(list(env.probe_set.pairs))
                elif kind == "feedback_ack" and not env.feedback_ack.accepted:
                    refusals.append((env.feedback_ack.global_batch, env.feedback_ack.reason))
                elif kind == "disconnect":
                    sock.send(hello)
                    last_sent = time.monotonic()
                elif kind == "reject":
                    raise RuntimeError("the coordinator rejected the trainer: " + env.reject.reason)
                elif kind == "shutdown":
                    return refusals
            now = time.monotonic()
            if not alive():
                return refusals
            if now - last_heard > give_up_after:
                raise RuntimeError("no word from the coordinator at %s for %.0f s" % (endpoint, give_up_after))
            if now - last_sent >= heartbeat_s:
                sock.send(_envelope(heartbeat=pb.Heartbeat()))
                last_sent = now
    finally:
        sock.close()
        ctx.term()
