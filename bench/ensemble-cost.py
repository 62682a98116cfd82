#!/usr/bin/env python3
"""LASeR vs ensemble cost: one RM per mini-batch (LinUCB) against all K RMs on every prompt (the
score ensemble), on the same worker pool and the same input, measured with real processes on loopback.

Every RM is the `simulated-latency` RM (a SIMULATION of a GPU reward model: it sleeps --ms per
prompt, then returns the scores of a built-in base RM). The K RMs wrap K different bases (default
answer-match, self-consistency, arithmetic-check, length), so they disagree and LinUCB has something
to choose between, and all sleep the same --ms, so an RM call costs the same whichever RM is chosen.
One `laser coordinator` and --workers `laser worker` processes with --slots slots each, every worker
serving every RM. The run has two iterations: the first (--warmup-prompts-per-task) runs while the
workers start and join, the second (--prompts-per-task, a different input file of the same demo
data) is measured: its `wall_seconds` and `rm_calls` from summary.json. Workers are started only once
the coordinator has logged "iteration 1/2:" (see docs/performance.md#horizontal-scaling, stale
Hellos); a run in which not every worker had joined before the measured iteration began is
discarded and run again.

Per strategy (default linucb, ensemble, random; each repeat runs every strategy once, in an order
rotated per repeat) it reports the median over --repeats of
  - wall time of the measured iteration,
  - RM calls: candidates scored, summed over RMs (summary.json's rm_calls), and prompt x RM scorings
    (rm_calls over the candidates per prompt),
  - coordinator CPU seconds during the measured iteration (from /proc/PID/stat, sampled when the
    coordinator logs the iteration's start and end; if it has exited by then, its total from wait4),
  - a sleep-only lower bound of the wall time (the simulated sleeps packed onto the pool's slots,
    batch after batch when pipeline_depth is 1), and the time per batch above that bound.
The ratios strategy / ensemble are taken per repeat (runs of the same repeat are close in time, on a
noisy machine) and their median is compared with the target 1.1 / K.

Run with bench/ensemble-cost.sh (or this file with --laser PATH); the last line printed is one JSON
object.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import demo_data, free_port, log, reap, wait_for

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--laser", default=".build/release/laser")
ap.add_argument("--strategies", default="linucb,ensemble,random",
                help="comma-separated; must include ensemble (the reference of the ratios)")
ap.add_argument("--bases", default="answer-match,self-consistency,arithmetic-check,length",
                help="the base kinds of the K simulated-latency RMs (K = how many)")
ap.add_argument("--ms", type=float, default=10.0, help="simulated ms per prompt, the same for every RM")
ap.add_argument("--workers", type=int, default=4)
ap.add_argument("--slots", type=int, default=2)
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--shard-size", type=int, default=4)
ap.add_argument("--pipeline-depth", type=int, default=1, help="1 = the paper's sequential loop")
ap.add_argument("--prompts-per-task", type=int, default=320,
                help="demo-data prompts per task family in the measured iteration (3 families)")
ap.add_argument("--warmup-prompts-per-task", type=int, default=96)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--attempts", type=int, default=3, help="tries per run when workers join too late")
ap.add_argument("--keep", action="store_true", help="keep the work folder")
args = ap.parse_args()

strategies = [s for s in args.strategies.split(",") if s]
if "ensemble" not in strategies:
    raise SystemExit("--strategies must include ensemble")
bases = [b for b in args.bases.split(",") if b]
K = len(bases)
if K < 2:
    raise SystemExit("--bases needs at least 2 kinds")
laser = os.path.abspath(args.laser)
if not os.access(laser, os.X_OK):
    raise SystemExit(f"no laser binary at {laser} (build it: swift build -c release --product laser)")
work = tempfile.mkdtemp(prefix="laser-ensemble-cost-")
clock_ticks = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime of a live process in seconds, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / clock_ticks
    except (OSError, IndexError, ValueError):
        return None


# One demo data set for every run: iteration 1 (warm-up) and iteration 2 (measured) are different
# files of the same generator, so the measured prompts are not the warm-up's.
warmup_file = demo_data(laser, os.path.join(work, "warmup"), args.warmup_prompts_per_task, 2, args.seed)[0]
measured_file = demo_data(laser, os.path.join(work, "measured"), args.prompts_per_task, 2, args.seed)[1]
with open(measured_file) as f:
    candidates = [len(json.loads(line)["candidates"]) for line in f if line.strip()]
n_prompts = len(candidates)
uniform_candidates = candidates[0] if len(set(candidates)) == 1 else None

rm_names = [f"sim-{b}" for b in bases]
slots_total = args.workers * args.slots


def lower_bound(rms_per_batch):
    """Seconds the simulated sleeps alone take on the pool: per batch, its tasks in rounds of
    slots_total (when the next batch waits for this one, pipeline_depth 1), or all tasks packed."""
    ms = args.ms / 1000
    sizes = [min(args.batch_size, n_prompts - s) for s in range(0, n_prompts, args.batch_size)]
    if args.pipeline_depth == 1:
        total = 0.0
        for b in sizes:
            shards = [min(args.shard_size, b - s) for s in range(0, b, args.shard_size)] * rms_per_batch
            shards.sort(reverse=True)
            # longest-first onto the slots; a batch ends with its slowest slot
            load = [0.0] * slots_total
            for sh in shards:
                i = load.index(min(load))
                load[i] += sh * ms
            total += max(load)
        return total
    return n_prompts * rms_per_batch * ms / slots_total


def run(strategy, label):
    rundir = tempfile.mkdtemp(prefix=f"run-{strategy}-", dir=work)
    config = os.path.join(rundir, "bench.yaml")
    rms = "\n".join(f"  - {{name: {n}, kind: simulated-latency, params: {{base: {b}, ms: {args.ms}}}}}"
                    for n, b in zip(rm_names, bases))
    with open(config, "w") as f:
        f.write(f"""input: [{warmup_file}, {measured_file}]
seed: {args.seed}
strategy: {strategy}
batch_size: {args.batch_size}
shard_size: {args.shard_size}
pipeline_depth: {args.pipeline_depth}
reward_models:
{rms}
network: {{heartbeat_ms: 1000, liveness: 5, lease_ms: 60000}}
""")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = os.path.join(rundir, "out")
    logpath = os.path.join(rundir, "coordinator.log")
    started = time.time()
    with open(logpath, "w") as logfile:
        coordinator = subprocess.Popen([laser, "coordinator", config, "--bind", endpoint, "--out", out, "--log-level", "info"],
                                       stdout=subprocess.DEVNULL, stderr=logfile)

    def log_text():
        with open(logpath) as f:
            return f.read()

    # Workers only once the coordinator has loaded the first iteration (stale Hellos, see the docstring).
    deadline = time.time() + 120
    while time.time() < deadline and coordinator.poll() is None and "iteration 1/2:" not in log_text():
        time.sleep(0.02)
    workers = [subprocess.Popen([laser, "worker", "--connect", endpoint, "--id", f"w{i}", "--slots", str(args.slots),
                                 "--give-up-after", "120", "--log-level", "error"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i in range(args.workers)]
    # Coordinator CPU at the start and the end of the measured iteration, polled every 10 ms.
    cpu_start = cpu_end = None
    while coordinator.poll() is None:
        text = log_text()
        if cpu_start is None and "iteration 2/2:" in text:
            cpu_start = proc_cpu(coordinator.pid)
        if cpu_start is not None and "iteration 2 complete" in text:
            cpu_end = proc_cpu(coordinator.pid)
            break
        time.sleep(0.01)
    usage = wait_for(coordinator)
    code = coordinator.returncode
    elapsed = time.time() - started
    coordinator_total = usage.ru_utime + usage.ru_stime
    worker_cpu = reap(workers)
    text = log_text()
    if code != 0:
        args.keep = True
        raise SystemExit(f"coordinator failed ({label}); its log: {logpath}\n{text[-3000:]}")
    joined = text.split("iteration 2/2")[0].count(" joined: ")
    if joined < args.workers:
        log(f"  {label}: only {joined} of {args.workers} workers had joined when the measured iteration began; run again")
        shutil.rmtree(rundir, ignore_errors=True)
        return None
    if cpu_start is None:
        cpu_start = 0.0  # exited before the first sample: cannot happen with a 2-iteration run, but be safe
    coordinator_cpu = (cpu_end if cpu_end is not None else coordinator_total) - cpu_start
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    measured = summary["iterations"][-1]
    assert measured["iteration"] == 2 and measured["prompts"] == n_prompts, measured
    calls_by_rm = measured["rm_calls"]
    rm_calls = sum(calls_by_rm.values())
    scorings = rm_calls / uniform_candidates if uniform_candidates else None
    result = {"wall_s": measured["wall_seconds"], "rm_calls": rm_calls, "prompt_scorings": scorings,
              "rm_calls_by_rm": calls_by_rm, "batches": measured["batches"], "pairs": measured["pairs"],
              "coordinator_cpu_s": coordinator_cpu, "coordinator_cpu_total_s": coordinator_total,
              "worker_cpu_total_s": worker_cpu, "run_s": elapsed,
              "retried_tasks": summary["counters"]["tasks_retried"]}
    log(f"  {label}: {result['wall_s']:.3f} s, {rm_calls} RM calls ({scorings:g} prompt x RM scorings), "
        f"{measured['batches']} batches, {measured['pairs']} pairs; coordinator CPU {coordinator_cpu:.3f} s in the "
        f"iteration ({coordinator_total:.2f} s whole run), workers {worker_cpu:.2f} s; whole run {elapsed:.1f} s; "
        f"RM calls by RM: {calls_by_rm}")
    shutil.rmtree(rundir, ignore_errors=True)
    return result


samples = {s: [] for s in strategies}
discarded = 0
try:
    for rep in range(args.repeats):
        order = strategies[rep % len(strategies):] + strategies[:rep % len(strategies)]
        log(f"repeat {rep + 1}/{args.repeats}: {', '.join(order)}")
        for s in order:
            for attempt in range(args.attempts):
                r = run(s, s)
                if r is not None:
                    break
                discarded += 1
            else:
                raise SystemExit(f"{s}: workers joined too late in {args.attempts} tries; raise --warmup-prompts-per-task")
            samples[s].append(r)
finally:
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"work folder kept: {work}")


def med(values):
    return statistics.median(values)


target = 1.1 / K
ens = samples["ensemble"]
rows = []
for s in strategies:
    rms_per_batch = K if s in ("ensemble", "agreement") else 1
    runs = samples[s]
    wall = med(r["wall_s"] for r in runs)
    bound = lower_bound(rms_per_batch)
    batches = runs[0]["batches"]
    row = {"strategy": s, "wall_s": round(wall, 4), "wall_runs": [round(r["wall_s"], 4) for r in runs],
           "rm_calls": med(r["rm_calls"] for r in runs),
           "prompt_scorings": med(r["prompt_scorings"] for r in runs) if uniform_candidates else None,
           "coordinator_cpu_s": round(med(r["coordinator_cpu_s"] for r in runs), 3),
           "sleep_lower_bound_s": round(bound, 4),
           "overhead_ms_per_batch": round(1000 * (wall - bound) / batches, 2), "batches": batches,
           "retried_tasks": sum(r["retried_tasks"] for r in runs)}
    if s != "ensemble":
        wr = [a["wall_s"] / b["wall_s"] for a, b in zip(runs, ens)]
        cr = [a["rm_calls"] / b["rm_calls"] for a, b in zip(runs, ens)]
        pr = [a["coordinator_cpu_s"] / b["coordinator_cpu_s"] for a, b in zip(runs, ens) if b["coordinator_cpu_s"] > 0]
        row.update({"wall_ratio": round(med(wr), 4), "wall_ratio_runs": [round(x, 4) for x in wr],
                    "rm_calls_ratio": round(med(cr), 4),
                    "coordinator_cpu_ratio": round(med(pr), 3) if pr else None,
                    "sleep_lower_bound_ratio": round(bound / lower_bound(K), 4) if args.ms > 0 else None,
                    "wall_target_met": med(wr) <= target, "rm_calls_target_met": med(cr) <= target})
    rows.append(row)

print(f"LASeR vs ensemble cost. K = {K} simulated-latency RMs (a SIMULATION: {args.ms:g} ms sleep per prompt, bases "
      f"{', '.join(bases)}); {args.workers} workers x {args.slots} slots, every worker serving every RM; "
      f"{n_prompts} prompts in the measured iteration, batch_size {args.batch_size}, shard_size {args.shard_size}, "
      f"pipeline_depth {args.pipeline_depth}; median of {args.repeats} repeats; target ratio <= 1.1/K = {target:.3f}")
print(f"{'strategy':<9} {'wall s':>7} {'bound s':>7} {'over ms/batch':>13} {'RM calls':>8} {'scorings':>8} "
      f"{'coord CPU s':>11} {'wall/ens':>8} {'calls/ens':>9} {'CPU/ens':>7}  wall runs")
for r in rows:
    ratio = lambda k, f: (f % r[k]) if r.get(k) is not None else "-"
    print(f"{r['strategy']:<9} {r['wall_s']:>7.3f} {r['sleep_lower_bound_s']:>7.3f} {r['overhead_ms_per_batch']:>13.2f} "
          f"{r['rm_calls']:>8.0f} {r['prompt_scorings'] or 0:>8.0f} {r['coordinator_cpu_s']:>11.3f} "
          f"{ratio('wall_ratio', '%.4f'):>8} {ratio('rm_calls_ratio', '%.4f'):>9} {ratio('coordinator_cpu_ratio', '%.3f'):>7}  "
          f"{', '.join(f'{x:.3f}' for x in r['wall_runs'])}")
lin = next((r for r in rows if r["strategy"] == "linucb"), None)
if lin:
    print(f"linucb / ensemble: wall {lin['wall_ratio']:.4f}, RM calls {lin['rm_calls_ratio']:.4f} "
          f"(target <= {target:.3f}: wall {'met' if lin['wall_target_met'] else 'NOT met'}, "
          f"RM calls {'met' if lin['rm_calls_target_met'] else 'NOT met'})")
result = {"benchmark": "ensemble-cost", "simulation": "simulated-latency RMs (sleep per prompt)", "k": K,
          "bases": bases, "simulated_ms_per_prompt": args.ms, "workers": args.workers, "slots": args.slots,
          "prompts": n_prompts, "candidates_per_prompt": uniform_candidates, "batch_size": args.batch_size,
          "shard_size": args.shard_size, "pipeline_depth": args.pipeline_depth, "repeats": args.repeats,
          "cpus": os.cpu_count(), "target_ratio": round(target, 4), "discarded_runs": discarded, "strategies": rows}
print(json.dumps(result, separators=(",", ":")))
