"""A trainer client for laser: receive preference batches in order, report the loss of each.

Needs only pyzmq and protobuf from PyPI, plus laser_pb2.py (generated from proto/laser.proto by
scripts/generate-proto.sh and committed next to this file).

    from laser_trainer import LaserTrainer
    with LaserTrainer("tcp://coordinator:5555", trainer_id="rank0") as trainer:
        for batch in trainer.batches():          # PreferenceBatch messages, in batch order
            loss = train_step(batch.pairs)       # your optimiser step on batch.pairs
            trainer.report(batch, loss)          # becomes the bandit's reward (-loss, normalised)

The socket is owned by one background thread, which also keeps heartbeats flowing while your step
runs and reconnects (TrainerHello again) when the coordinator restarts. Delivery is at least once: after
a trainer or coordinator restart, a batch whose loss was not recorded yet is sent again; report it again.
A loss is applied once; the coordinator refuses a second one for the same batch (see `refusals`).
"""

import queue
import socket
import threading
import time

import zmq

import laser_pb2 as pb

PROTOCOL_VERSION = 1


class LaserTrainer:
    def __init__(self, endpoint, trainer_id=None, window=1, give_up_after=60.0, curve=None):
        """endpoint: the coordinator's ZeroMQ endpoint. window: batches held before their losses are
        reported. curve: optional (server_public_z85, client_public_z85, client_secret_z85)."""
        self.endpoint = endpoint
        self.trainer_id = trainer_id or "%s-%d" % (socket.gethostname(), threading.get_ident() % 100000)
        self.window = max(1, int(window))
        self.give_up_after = give_up_after
        self.curve = curve
        self.refusals = []          # (global_batch, reason) the coordinator refused
        self.wants_loss = None      # set on welcome: whether the coordinator waits for losses
        self.wants_loss_after = None  # set on welcome: whether each loss needs loss_after (prediction-gain)
        self.wants_probe_losses = None  # set on welcome: whether each loss needs the probe's losses
        self.probe = None           # probe-progress: the ProbeSet's pairs, before the first batch
        self._inbox = queue.Queue()
        self._outbox = queue.Queue()
        self._stop = threading.Event()
        self._error = None
        # report() wakes the socket thread through an inproc pair, so a loss leaves at once instead
        # of after the next poll timeout (each end is used by one thread only, as ZeroMQ requires).
        self._ctx = zmq.Context()
        self._wake_address = "inproc://laser-trainer-wake-%d" % id(self)
        self._wake_rx = self._ctx.socket(zmq.PAIR)
        self._wake_rx.bind(self._wake_address)
        self._wake_tx = self._ctx.socket(zmq.PAIR)
        self._wake_tx.connect(self._wake_address)
        self._wake_lock = threading.Lock()
        self._thread = threading.Thread(target=self._io, name="laser-trainer-io", daemon=True)
        self._thread.start()

    # -- public API ---------------------------------------------------------------------------

    def batches(self):
        """Yields PreferenceBatch messages in order until the coordinator says the run is over."""
        while True:
            item = self._inbox.get()
            if item is None:
                if self._error:
                    raise RuntimeError(self._error)
                return
            yield item

    def report(self, batch, loss, loss_after=None, probe_loss_before=None, probe_loss_after=None):
        """Reports the loss on a batch (a PreferenceBatch or its global_batch number).
        reward.source prediction-gain (`wants_loss_after`): also loss_after, the loss on the same pairs
        after the optimiser step; the reward is loss - loss_after.
        reward.source probe-progress (`wants_probe_losses`): also the mean loss on `probe` (the
        ProbeSet's pairs) just before and just after the step; the reward is their difference."""
        global_batch = batch.global_batch if hasattr(batch, "global_batch") else int(batch)
        probe = None if probe_loss_before is None else (float(probe_loss_before), float(probe_loss_after))
        self._outbox.put((global_batch, float(loss), None if loss_after is None else float(loss_after), probe))
        with self._wake_lock:
            self._wake_tx.send(b"", zmq.NOBLOCK)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        with self._wake_lock:
            self._wake_tx.close(linger=0)
        self._ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the socket thread --------------------------------------------------------------------

    def _envelope(self, **body):
        env = pb.Envelope(protocol_version=PROTOCOL_VERSION)
        for name, message in body.items():
            getattr(env, name).CopyFrom(message)
        return env.SerializeToString()

    def _connect(self, ctx):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        if self.curve:
            server_key, public, secret = self.curve
            sock.curve_serverkey = server_key.encode()
            sock.curve_publickey = public.encode()
            sock.curve_secretkey = secret.encode()
        sock.connect(self.endpoint)
        hello = pb.TrainerHello(trainer_id=self.trainer_id, window=self.window, software_version="python")
        sock.send(self._envelope(trainer_hello=hello))
        return sock

    def _io(self):
        ctx = self._ctx
        sock = self._connect(ctx)
        poller = zmq.Poller()
        poller.register(self._wake_rx, zmq.POLLIN)
        heartbeat_s, liveness = 1.0, 5
        welcomed = False
        last_heard = last_sent = hello_sent = time.monotonic()
        waiting_since = time.monotonic()
        try:
            while not self._stop.is_set():
                poller.register(sock, zmq.POLLIN)
                # No fixed poll period: sleep until the next heartbeat is due (report() and incoming
                # frames wake the poll at once), so no batch waits on a timer.
                if welcomed:
                    due = min(heartbeat_s - (time.monotonic() - last_sent), heartbeat_s * liveness - (time.monotonic() - last_heard))
                else:
                    due = 0.25
                ready = dict(poller.poll(max(1, int(due * 1000))))
                poller.unregister(sock)
                if self._wake_rx in ready:
                    while True:
                        try:
                            self._wake_rx.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                if sock in ready:
                    while True:
                        try:
                            frame = sock.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        last_heard = time.monotonic()
                        env = pb.Envelope()
                        try:
                            env.ParseFromString(frame)
                        except Exception:
                            continue
                        kind = env.WhichOneof("body")
                        if kind == "trainer_welcome":
                            welcomed = True
                            heartbeat_s = max(0.01, env.trainer_welcome.heartbeat_interval_ms / 1000.0)
                            liveness = max(2, env.trainer_welcome.liveness)
                            self.wants_loss = env.trainer_welcome.wants_loss
                            self.wants_loss_after = env.trainer_welcome.wants_loss_after
                            self.wants_probe_losses = env.trainer_welcome.wants_probe_losses
                        elif kind == "probe_set":
                            self.probe = list(env.probe_set.pairs)
                        elif kind == "preference_batch":
                            self._inbox.put(env.preference_batch)
                        elif kind == "feedback_ack" and not env.feedback_ack.accepted:
                            self.refusals.append((env.feedback_ack.global_batch, env.feedback_ack.reason))
                        elif kind == "disconnect":
                            # The coordinator restarted and does not know us: say hello again.
                            welcomed = False
                            sock.send(self._envelope(trainer_hello=pb.TrainerHello(
                                trainer_id=self.trainer_id, window=self.window, software_version="python")))
                            hello_sent = time.monotonic()
                        elif kind == "reject" and env.reject.retry_after_ms > 0:
                            # Another trainer holds the role for now (a live one): ask again after the
                            # time the coordinator names, never right away (that would take turns forever).
                            welcomed = False
                            hello_sent = time.monotonic() + env.reject.retry_after_ms / 1000.0 - 2
                        elif kind == "reject":
                            self._error = "the coordinator rejected this trainer: " + env.reject.reason
                            return
                        elif kind == "shutdown":
                            return
                while True:
                    try:
                        global_batch, loss, loss_after, probe = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    feedback = pb.BatchFeedback(global_batch=global_batch, loss=loss)
                    if loss_after is not None:
                        feedback.loss_after = loss_after
                        feedback.has_loss_after = True
                    if probe is not None:
                        feedback.probe_loss_before, feedback.probe_loss_after = probe
                        feedback.has_probe_losses = True
                    sock.send(self._envelope(batch_feedback=feedback))
                    last_sent = time.monotonic()
                now = time.monotonic()
                if welcomed:
                    if now - last_heard > heartbeat_s * liveness:
                        welcomed = False
                        waiting_since = now
                        sock.close()
                        sock = self._connect(ctx)
                        hello_sent = now
                    elif now - last_sent >= heartbeat_s:
                        sock.send(self._envelope(heartbeat=pb.Heartbeat()))
                        last_sent = now
                else:
                    if self.give_up_after and now - waiting_since > self.give_up_after and now - last_heard > self.give_up_after:
                        self._error = "no coordinator answered at %s within %.0f s" % (self.endpoint, self.give_up_after)
                        return
                    if now - hello_sent > 2:
                        sock.close()
                        sock = self._connect(ctx)
                        hello_sent = now
        finally:
            sock.close(linger=0)
            self._wake_rx.close(linger=0)
            self._inbox.put(None)
