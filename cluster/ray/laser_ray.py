#!/usr/bin/env python3
"""Run laser on an existing Ray cluster: the coordinator as a Ray actor pinned to the driver's node
(the head node, where the run directory lives), and one laser worker per GPU bundle of a placement
group, each a Ray actor that Ray restarts when it dies.

    ray start --head                                   # or an existing cluster (OpenRLHF, veRL)
    python3 cluster/ray/laser_ray.py --config run.yaml --out /shared/runs/r1 --workers 8 --gpus-per-worker 1
    python3 cluster/ray/laser_ray.py --config run.yaml --out /shared/runs/r1 --workers 8 --rm-capacity 1

Every actor runs the `laser` binary (--laser, default `laser` on PATH) as a child process; an actor is a
thin shell that starts it, reports it, and dies with it:
  - laser-coordinator: `laser coordinator CONFIG --out RUN_DIR --bind tcp://NODE_IP:PORT`, or
    `--resume RUN_DIR` when the run directory has a journal and config.yaml (the rule every laser
    launcher follows, docs/cluster.md). It exits with the coordinator's status; a status >= 128 (a
    crash, a signal) makes the actor die, Ray restarts it on the same node, and it resumes.
  - laser-worker-I: `laser worker --connect ENDPOINT --id ray-worker-I --rm-config CONFIG
    --rm-capacity M --slots S --parent-pid ACTOR_PID`, in bundle I of the placement group (one GPU per
    bundle with --gpus-per-worker 1; Ray sets CUDA_VISIBLE_DEVICES for the actor, and the worker
    inherits it). A worker that exits with a non-zero status takes its actor down, and Ray restarts the
    actor (max_restarts -1): the new worker says Hello with the same id and takes its place. A killed
    actor takes its worker with it (--parent-pid; the coordinator's child, PR_SET_PDEATHSIG).

The run's RM definitions come from --config on the worker side too (`--rm-config`), so subprocess and
HTTP RMs run only from the operator's file, never from the coordinator's messages (docs/security.md).
The driver prints one JSON line last: the coordinator's exit status, the endpoint, and per worker its
restarts and its laser worker's last pid. It exits with the coordinator's status.

Tested by scripts/ray-test.sh on a local `ray start --head` (127.0.0.1): a run with a killed worker
actor gives the same batch files as `laser run`.
"""
import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

NAMESPACE_DEFAULT = "laser"


def die_with_parent():
    """Runs in the child before exec: SIGTERM when the actor process dies (PR_SET_PDEATHSIG = 1)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def node_ip():
    return ray.util.get_node_ip_address()


# One thread (the default): the child is started by the actor's main thread, so PR_SET_PDEATHSIG (which
# fires when the creating thread exits) fires only when the actor process dies.
@ray.remote(max_restarts=-1)
class LaserCoordinator:
    def __init__(self, laser, config, out, port, log_dir, extra):
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self.endpoint_text = f"tcp://{node_ip()}:{port}"
        resume = os.path.exists(os.path.join(out, "journal")) and os.path.exists(os.path.join(out, "config.yaml"))
        args = [laser, "coordinator"] + (["--resume", out] if resume else [config, "--out", out])
        args += ["--bind", self.endpoint_text] + extra
        os.makedirs(log_dir, exist_ok=True)
        self.log = open(os.path.join(log_dir, "coordinator.log"), "a")
        self.log.write(f"# laser_ray: {' '.join(args)} (restarted: {self.restarted})\n")
        self.log.flush()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    def endpoint(self):
        return self.endpoint_text

    def wait(self):
        rc = self.proc.wait()
        if rc < 0 or rc >= 128:
            # A crash or a signal: let Ray restart this actor, which resumes the run.
            os._exit(1)
        return rc

    def info(self):
        return {"pid": self.proc.pid, "restarted": self.restarted, "returncode": self.proc.poll()}


@ray.remote(max_restarts=-1, max_concurrency=4)
class LaserWorker:
    def __init__(self, laser, endpoint, worker_id, rm_config, slots, rm_capacity, log_dir, extra):
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed
        args = [laser, "worker", "--connect", endpoint, "--id", worker_id, "--rm-config", rm_config,
                "--slots", str(slots), "--rm-capacity", str(rm_capacity), "--parent-pid", str(os.getpid()),
                "--give-up-after", "600"] + extra
        os.makedirs(log_dir, exist_ok=True)
        self.log = open(os.path.join(log_dir, f"{worker_id}.log"), "a")
        self.log.write(f"# laser_ray: {' '.join(args)} (restarted: {self.restarted}, "
                       f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')})\n")
        self.log.flush()
        # --parent-pid, not PR_SET_PDEATHSIG: this actor is threaded (info() while wait() blocks), and the
        # death signal follows the thread that started the child, not the process.
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self):
        rc = self.proc.wait()
        if rc != 0:
            os._exit(1)  # Ray restarts the actor, which starts a new worker with the same id
        return rc

    def info(self):
        return {"pid": self.proc.pid, "actor_pid": os.getpid(), "restarted": self.restarted,
                "returncode": self.proc.poll()}


def free_port():
    s = socket.socket()
    s.bind(("", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", default="auto", help="the Ray cluster (default: auto, the local one)")
    ap.add_argument("--namespace", default=NAMESPACE_DEFAULT, help="Ray namespace of the named actors")
    ap.add_argument("--laser", default="laser", help="the laser binary on every node")
    ap.add_argument("--config", required=True, help="the run config (also the workers' --rm-config)")
    ap.add_argument("--rm-config", help="the workers' RM definitions (default: --config)")
    ap.add_argument("--out", required=True, help="the run directory (on the head node, or shared storage)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--rm-capacity", type=int, default=0, help="0: static; M > 0: dynamic placement")
    ap.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per bundle (1 in production)")
    ap.add_argument("--cpus-per-worker", type=float, default=1)
    ap.add_argument("--strategy", default="PACK", help="placement group strategy (PACK, SPREAD, STRICT_SPREAD)")
    ap.add_argument("--port", type=int, default=0, help="the coordinator's port (0: a free one, fixed for the run)")
    ap.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
    args = ap.parse_args()

    laser = args.laser
    config = os.path.abspath(args.config)
    rm_config = os.path.abspath(args.rm_config or args.config)
    out = os.path.abspath(args.out)
    logs = os.path.join(os.path.dirname(out) or ".", os.path.basename(out) + ".ray-logs")
    ray.init(address=args.address, namespace=args.namespace, log_to_driver=False)
    here = ray.get_runtime_context().get_node_id()
    port = args.port or free_port()
    coordinator = LaserCoordinator.options(
        name="laser-coordinator", num_cpus=1,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    ).remote(laser, config, out, port, logs, [])
    endpoint = ray.get(coordinator.endpoint.remote())
    bundle = {"CPU": args.cpus_per_worker}
    if args.gpus_per_worker > 0:
        bundle["GPU"] = args.gpus_per_worker
    group = placement_group([dict(bundle) for _ in range(args.workers)], strategy=args.strategy)
    ray.get(group.ready(), timeout=600)
    workers = []
    for i in range(args.workers):
        workers.append(LaserWorker.options(
            name=f"laser-worker-{i}", num_cpus=args.cpus_per_worker, num_gpus=args.gpus_per_worker,
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=i),
        ).remote(laser, endpoint, f"ray-worker-{i}", rm_config, args.slots, args.rm_capacity, logs, []))
    print(f"laser_ray: coordinator at {endpoint}, {args.workers} worker actor(s) in placement group "
          f"({args.strategy}, {bundle} each); logs in {logs}", file=sys.stderr, flush=True)

    # Keep every worker's wait() running: when one comes back with a RayActorError (its actor died and
    # is being restarted), call it again on the restarted actor.
    pending = {w.wait.remote(): i for i, w in enumerate(workers)}
    restarts = [0] * args.workers
    started = time.time()
    rc = None
    coordinator_wait = coordinator.wait.remote()
    while rc is None:
        if args.timeout and time.time() - started > args.timeout:
            print("laser_ray: timed out", file=sys.stderr)
            rc = 124
            break
        ready, _ = ray.wait([coordinator_wait] + list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            if ref == coordinator_wait:
                try:
                    rc = ray.get(ref)
                except ray.exceptions.RayActorError:
                    print("laser_ray: the coordinator actor died; Ray restarts it and it resumes", file=sys.stderr)
                    time.sleep(1)
                    coordinator_wait = coordinator.wait.remote()
                continue
            i = pending.pop(ref)
            try:
                ray.get(ref)  # the worker left (0): the run is over for it
            except ray.exceptions.RayActorError:
                restarts[i] += 1
                print(f"laser_ray: worker actor {i} died; Ray restarts it", file=sys.stderr, flush=True)
                time.sleep(0.5)
                pending[workers[i].wait.remote()] = i

    infos = []
    for i, w in enumerate(workers):
        try:
            info = ray.get(w.info.remote(), timeout=10)
        except Exception as e:  # noqa: BLE001 - report what could be read
            info = {"error": str(e)}
        info.update({"worker": f"ray-worker-{i}", "restarts_seen": restarts[i]})
        infos.append(info)
    # Workers leave on the coordinator's Shutdown; give them a moment, then take everything down.
    deadline = time.time() + 10
    while pending and time.time() < deadline:
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
        for ref in ready:
            pending.pop(ref, None)
    for w in workers:
        ray.kill(w, no_restart=True)
    ray.kill(coordinator, no_restart=True)
    remove_placement_group(group)
    print(json.dumps({"coordinator_exit": rc, "endpoint": endpoint, "run_directory": out, "workers": infos}))
    sys.exit(rc)


if __name__ == "__main__":
    main()
