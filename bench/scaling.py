#!/usr/bin/env python3
"""Horizontal scaling of laser workers, measured with real processes on loopback.

Every RM call is the `simulated-latency` RM (a SIMULATION: it sleeps `--ms` per prompt and then
scores with the built-in `length` RM), so a worker's capacity is known: 1000 / ms prompts per second.
For each worker count W the job has W x --prompts-per-worker prompts (every run lasts about as long),
one `laser coordinator` and W `laser worker` processes; throughput is prompts scored per second of
the second iteration's wall time in summary.json (the first warms up while the workers start
and join), so process start-up is not counted. Efficiency
is the W-worker throughput over W times the 1-worker throughput of the same invocation.

The mixed pool: fast and slow workers in one run, against the sum of an all-fast and an all-slow run
of the same sizes. Every worker of a run gets the same RM definitions from the coordinator, so a
slow worker is a worker whose simulated sleep is scaled by bench/sleep_scale.c (LD_PRELOAD).

Run with bench/scaling.sh; the last line printed is one JSON object.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, log, reap, wait_for

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--laser", default=".build/release/laser")
ap.add_argument("--shim", required=True, help="the compiled bench/sleep_scale.c")
ap.add_argument("--workers", default="1,2,4,8,16,32,64")
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--ms", type=float, default=20.0, help="simulated ms per prompt")
ap.add_argument("--prompts-per-worker", type=int, default=200)
ap.add_argument("--slots", type=int, default=2)
ap.add_argument("--batch-size", type=int, default=256)
ap.add_argument("--shard-size", type=int, default=1)
ap.add_argument("--pipeline-depth", type=int, default=4)
ap.add_argument("--mixed", default="32x10,32x40", help="FASTxMS,SLOWxMS (empty: no mixed pool)")
ap.add_argument("--keep", action="store_true", help="keep the work folder")
args = ap.parse_args()

laser = os.path.abspath(args.laser)
shim = os.path.abspath(args.shim)
work = tempfile.mkdtemp(prefix="laser-scaling-")
datasets = {}
cpu_samples = {}  # label -> [(coordinator cores, all processes' cores)] averaged over each whole run


def dataset(prompts):
    """A demo-data input file with at least `prompts` prompts (3 task families per file)."""
    per_task = max(1, -(-prompts // 3))
    if per_task not in datasets:
        out = os.path.join(work, f"data-{per_task}")
        subprocess.run([laser, "demo-data", "--out", out, "--iterations", "1", "--prompts-per-task", str(per_task)],
                       check=True, stdout=subprocess.DEVNULL)
        datasets[per_task] = os.path.join(out, "input", "iteration-1.jsonl")
    return datasets[per_task]


def run(pool, label):
    """pool: list of sleep scales, one per worker. Returns prompts per second of the measured iteration."""
    # Iteration 1 warms up while the workers start and join; iteration 2 is measured. Each worker
    # gets about --prompts-per-worker x ms of work in it, whatever its speed.
    prompts = int(sum(args.prompts_per_worker / s for s in pool))
    warmup = dataset(max(3, prompts // 2))
    data = dataset(prompts)
    rundir = tempfile.mkdtemp(prefix="run-", dir=work)
    config = os.path.join(rundir, "bench.yaml")
    with open(config, "w") as f:
        f.write(f"""input: [{warmup}, {data}]
strategy: fixed
fixed_rm: sim
batch_size: {args.batch_size}
shard_size: {args.shard_size}
pipeline_depth: {args.pipeline_depth}
context: {{dimension: 16}}
pairs: {{mode: best-vs-worst}}
reward_models:
  - {{name: sim, kind: simulated-latency, params: {{base: length, ms: {args.ms}}}}}
network: {{heartbeat_ms: 1000, liveness: 5, lease_ms: 60000}}
""")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = os.path.join(rundir, "out")
    logpath = os.path.join(rundir, "coordinator.log")
    started = time.time()
    # The coordinator first, and the workers only once it has loaded the first iteration: a worker
    # that waits more than 2 s for an answer re-sends its Hello from a fresh socket, and a coordinator
    # that was busy (loading a big input) then reads the stale Hello too and loses tasks' attempts to
    # a peer that is gone (see docs/performance.md#horizontal-scaling).
    with open(logpath, "w") as logfile:
        coordinator = subprocess.Popen([laser, "coordinator", config, "--bind", endpoint, "--out", out, "--log-level", "info"],
                                       stdout=subprocess.DEVNULL, stderr=logfile)
    deadline = time.time() + 120
    while time.time() < deadline and coordinator.poll() is None:
        with open(logpath) as f:
            if "iteration 1/2:" in f.read():
                break
        time.sleep(0.05)
    workers = []
    for i, scale in enumerate(pool):
        env = dict(os.environ)
        if scale != 1.0:
            env["LD_PRELOAD"] = shim
            env["LASER_BENCH_SLEEP_SCALE"] = str(scale)
        workers.append(subprocess.Popen(
            [laser, "worker", "--connect", endpoint, "--id", f"w{i}", "--slots", str(args.slots),
             "--give-up-after", "120", "--log-level", "error"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    usage = wait_for(coordinator)
    code = coordinator.returncode
    elapsed = time.time() - started
    coordinator_cpu = usage.ru_utime + usage.ru_stime
    worker_cpu = reap(workers)
    with open(logpath) as f:
        log_text = f.read()
    if code != 0:
        args.keep = True
        raise SystemExit(f"coordinator failed ({label}); its log: {logpath}\n{log_text[-3000:]}")
    before_measured = log_text.split("iteration 2/2")[0]
    joined = before_measured.count(" joined: ")
    if joined < len(pool):
        log(f"  warning: only {joined} of {len(pool)} workers had joined when the measured iteration began")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    measured = summary["iterations"][-1]
    n, wall = measured["prompts"], measured["wall_seconds"]
    tput = n / wall
    capacity = sum(1000.0 / (args.ms * s) for s in pool) if args.ms > 0 else float("inf")
    total = sum(it["prompts"] for it in summary["iterations"])
    log(f"  {label}: {n} prompts in {wall:.2f} s (whole run {elapsed:.2f} s): {tput:.1f} prompts/s, "
        f"{tput / capacity:.3f} of the pool's simulated capacity; CPU: coordinator {coordinator_cpu:.2f} s "
        f"({coordinator_cpu / elapsed:.0%} of a core), workers {worker_cpu:.2f} s, "
        f"{1e6 * (coordinator_cpu + worker_cpu) / total:.0f} us per prompt")
    cpu_samples.setdefault(label, []).append((coordinator_cpu / elapsed, (coordinator_cpu + worker_cpu) / elapsed))
    shutil.rmtree(rundir, ignore_errors=True)
    return tput


counts = [int(x) for x in args.workers.split(",") if x]
if 1 not in counts:
    counts = [1] + counts
mixed = None
if args.mixed:
    (nf, fms), (ns, sms) = [tuple(float(v) for v in part.split("x")) for part in args.mixed.split(",")]
    mixed = {"fast": (int(nf), fms / args.ms), "slow": (int(ns), sms / args.ms)}

samples = {w: [] for w in counts}
mixed_samples = {"fast": [], "slow": [], "mixed": []}
try:
    for rep in range(args.repeats):
        log(f"repeat {rep + 1}/{args.repeats}")
        for w in counts:
            samples[w].append(run([1.0] * w, f"{w} worker(s)"))
        if mixed:
            (nf, sf), (ns, ss) = mixed["fast"], mixed["slow"]
            mixed_samples["fast"].append(run([sf] * nf, f"{nf} fast ({args.ms * sf:g} ms)"))
            mixed_samples["slow"].append(run([ss] * ns, f"{ns} slow ({args.ms * ss:g} ms)"))
            mixed_samples["mixed"].append(run([sf] * nf + [ss] * ns, f"mixed {nf} fast + {ns} slow"))
finally:
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)

base = statistics.median(samples[1])
rows = []
print(f"simulated-latency RM, {args.ms:g} ms per prompt (a SIMULATION); batch_size {args.batch_size}, shard_size "
      f"{args.shard_size}, pipeline_depth {args.pipeline_depth}, {args.slots} slots per worker; median of {args.repeats}")
print(f"{'workers':>7}  {'prompts/s':>10}  {'ideal':>8}  {'efficiency':>10}  {'coordinator cores':>17}  {'all cores':>9}  runs (prompts/s)")
for w in counts:
    m = statistics.median(samples[w])
    eff = m / (w * base)
    cpu = cpu_samples.get(f"{w} worker(s)", [(0, 0)])
    coord_cores = statistics.median(c for c, _ in cpu)
    all_cores = statistics.median(a for _, a in cpu)
    rows.append({"workers": w, "prompts_per_s": round(m, 1), "efficiency": round(eff, 3),
                 "runs": [round(x, 1) for x in samples[w]], "capacity": round(w * 1000 / args.ms, 1) if args.ms else None,
                 "coordinator_cores": round(coord_cores, 2), "all_cores": round(all_cores, 2)})
    print(f"{w:>7}  {m:>10.1f}  {w * base:>8.1f}  {eff:>10.3f}  {coord_cores:>17.2f}  {all_cores:>9.2f}  "
          f"{', '.join(f'{x:.1f}' for x in samples[w])}")
result = {"benchmark": "horizontal-scaling", "simulated_ms_per_prompt": args.ms, "repeats": args.repeats,
          "batch_size": args.batch_size, "shard_size": args.shard_size, "pipeline_depth": args.pipeline_depth,
          "slots": args.slots, "cpus": os.cpu_count(), "one_worker_prompts_per_s": round(base, 1), "scaling": rows}
if mixed:
    f, s, m = (statistics.median(mixed_samples[k]) for k in ("fast", "slow", "mixed"))
    (nf, sf), (ns, ss) = mixed["fast"], mixed["slow"]
    print(f"mixed pool: {nf} fast ({args.ms * sf:g} ms) {f:.1f} + {ns} slow ({args.ms * ss:g} ms) {s:.1f} = {f + s:.1f} "
          f"prompts/s apart; together {m:.1f} prompts/s = {m / (f + s):.3f} of the sum")
    result["mixed"] = {"fast_workers": nf, "fast_ms": args.ms * sf, "slow_workers": ns, "slow_ms": args.ms * ss,
                       "fast_prompts_per_s": round(f, 1), "slow_prompts_per_s": round(s, 1),
                       "mixed_prompts_per_s": round(m, 1), "fraction_of_sum": round(m / (f + s), 3),
                       "runs": {k: [round(x, 1) for x in v] for k, v in mixed_samples.items()}}
print(json.dumps(result, separators=(",", ":")))
