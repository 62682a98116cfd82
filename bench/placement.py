#!/usr/bin/env python3
"""Dynamic placement (issue 17): RMs that move to the work, against static placement, the unconstrained
bound and the score ensemble, measured with real processes on loopback (`laser run`, its local workers).

Every RM is the `simulated-load` RM, a SIMULATION of a GPU reward model: it sleeps --ms per prompt and
then returns the scores of a built-in base RM, and a load of it sleeps --load-ms (as moving a 7B-70B RM
onto a GPU would take). The K RMs wrap K different bases so that they disagree and LinUCB has something
to choose between; all cost the same per prompt.

Variants, same input, same seed, same batch size and pipeline depth:
  (a) static:        --workers workers, each holding one RM, G/K per RM (placement.by_worker);
  (b) dynamic:       --workers workers of rm_capacity --capacity, moved by the coordinator's placement;
  (c) unconstrained: every worker holds every RM (static, no capacity limit): the bound;
  (d) ensemble:      the score ensemble on the static placement of (a).
(a), (b) and (c) run LinUCB and must produce the same bytes (selections and batch files); (d) is the
cost reference. Then the switching case: --switch-k RMs, capacity --switch-capacity, the random strategy
(a bandit that switches RMs all the time), dynamic against unconstrained, with the reload count.

Wall time is the run's: summary.json's iteration wall_seconds summed (from the first iteration's start,
so dynamic placement pays its first loads; static workers start with every RM already held, which
favours them). Workers start with `laser run`, so the first second includes their joining in every
variant alike. The report (report.html) of the dynamic run has the time chart of loaded and idle slots
per RM; --keep keeps the run folders.

The last line printed is one JSON object (keys: static_s, dynamic_s, unconstrained_s, ensemble_s,
dynamic_over_unconstrained, dynamic_over_ensemble, outputs_identical, reloads,
switching_dynamic_over_unconstrained, switching_reloads, plus the settings and per-variant details).
"""
import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import demo_data, log  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--laser", default=".build/release/laser")
ap.add_argument("--quick", action="store_true", help="a smaller input and load time (under 3 minutes in all)")
ap.add_argument("--bases", default="answer-match,self-consistency,arithmetic-check,length",
                help="base kinds of the K RMs (K = how many)")
ap.add_argument("--ms", type=float, default=20.0, help="simulated ms per prompt")
ap.add_argument("--load-ms", type=float, default=2000.0, help="simulated ms per load")
ap.add_argument("--workers", type=int, default=16)
ap.add_argument("--capacity", type=int, default=1)
ap.add_argument("--batch-size", type=int, default=64)
ap.add_argument("--shard-size", type=int, default=4)
ap.add_argument("--pipeline-depth", type=int, default=2)
ap.add_argument("--prompts-per-task", type=int, default=1600, help="demo prompts per task family per iteration")
ap.add_argument("--iterations", type=int, default=2)
ap.add_argument("--switch-bases", default="answer-match,self-consistency,arithmetic-check,length,instruction-following")
ap.add_argument("--switch-capacity", type=int, default=2)
ap.add_argument("--switch-prompts-per-task", type=int, default=1200)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--keep", action="store_true")
ap.add_argument("--cases", default="main,switching", help="which cases to run (the JSON keys of a case not run are null)")
args = ap.parse_args()
if args.quick:
    args.prompts_per_task = min(args.prompts_per_task, 960)
    args.switch_prompts_per_task = min(args.switch_prompts_per_task, 400)
    args.load_ms = min(args.load_ms, 500.0)
    args.ms = min(args.ms, 10.0)

laser = os.path.abspath(args.laser)
if not os.access(laser, os.X_OK):
    raise SystemExit(f"no laser binary at {laser} (build it: swift build -c release --product laser)")
work = tempfile.mkdtemp(prefix="laser-placement-")


def demo(per_task, name):
    return demo_data(laser, os.path.join(work, name), per_task, args.iterations, args.seed)


def config(path, inputs, bases, strategy, workers, capacity, by_worker=None):
    names = [f"sim-{b}" for b in bases]
    rms = "\n".join(
        f"  - {{name: {n}, kind: simulated-load, params: {{base: {b}, ms: {args.ms}, load_ms: {args.load_ms}}}}}"
        for n, b in zip(names, bases))
    text = f"""input: [{", ".join(inputs)}]
seed: {args.seed}
strategy: {strategy}
batch_size: {args.batch_size}
shard_size: {args.shard_size}
pipeline_depth: {args.pipeline_depth}
reward_models:
{rms}
network: {{heartbeat_ms: 1000, liveness: 10, lease_ms: 120000}}
workers: {{local: {workers}, slots: 1, rm_capacity: {capacity}}}
"""
    if by_worker:
        text += "placement:\n  idle_report_s: 0\n  by_worker:\n" + "".join(
            f"    local-{w}: [{rm}]\n" for w, rm in sorted(by_worker.items()))
    with open(path, "w") as f:
        f.write(text)
    return names


def run(label, inputs, bases, strategy, capacity, static_per_rm=False):
    rundir = os.path.join(work, label)
    os.makedirs(rundir)
    cfg = os.path.join(rundir, "config.yaml")
    names = [f"sim-{b}" for b in bases]
    by_worker = {w: names[w % len(names)] for w in range(args.workers)} if static_per_rm else None
    config(cfg, inputs, bases, strategy, args.workers, capacity, by_worker)
    out = os.path.join(rundir, "out")
    started = time.time()
    proc = subprocess.run([laser, "run", cfg, "--out", out, "--log-level", "warning"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.time() - started
    if proc.returncode != 0:
        args.keep = True
        raise SystemExit(f"{label}: laser run failed ({proc.returncode}); {rundir}\n{proc.stderr[-3000:]}")
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    wall = sum(it["wall_seconds"] for it in summary["iterations"])
    counters = summary.get("counters", {})
    calls = sum(sum(it["rm_calls"].values()) for it in summary["iterations"])
    log(f"  {label}: {wall:.2f} s (process {elapsed:.1f} s), {calls} candidates scored, loads "
        f"{counters.get('rm_loads', 0)}, reloads {counters.get('rm_reloads', 0)}")
    return {"wall_s": round(wall, 3), "process_s": round(elapsed, 2), "candidates_scored": calls,
            "loads": counters.get("rm_loads", 0), "reloads": counters.get("rm_reloads", 0),
            "unloads": counters.get("rm_unloads", 0), "load_failures": counters.get("rm_load_failures", 0),
            "out": out}


def same_output(a, b):
    """Selections and every batch file, byte for byte."""
    def files(root):
        found = []
        for d, _, fs in os.walk(root):
            for f in fs:
                rel = os.path.relpath(os.path.join(d, f), root)
                if rel == "selections.jsonl" or rel.startswith("batches" + os.sep):
                    found.append(rel)
        return sorted(found)
    fa, fb = files(a), files(b)
    if fa != fb or not fa:
        return False
    return all(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False) for f in fa)


bases = [b for b in args.bases.split(",") if b]
K = len(bases)
log(f"placement benchmark: K={K}, {args.workers} workers, capacity {args.capacity}, {args.ms} ms/prompt, "
    f"load {args.load_ms} ms, {args.prompts_per_task} prompts per task x 3 tasks x {args.iterations} iterations")
cases = set(args.cases.split(","))
inputs = demo(args.prompts_per_task, "data") if "main" in cases else None
results = {} if "main" not in cases else {
    "static": run("static", inputs, bases, "linucb", 0, static_per_rm=True),
    "dynamic": run("dynamic", inputs, bases, "linucb", args.capacity),
    "unconstrained": run("unconstrained", inputs, bases, "linucb", 0),
    "ensemble": run("ensemble", inputs, bases, "ensemble", 0, static_per_rm=True),
}
identical = None if not results else (same_output(results["static"]["out"], results["dynamic"]["out"]) and same_output(
    results["static"]["out"], results["unconstrained"]["out"]))

switch_bases = [b for b in args.switch_bases.split(",") if b]
log(f"switching case: K={len(switch_bases)}, capacity {args.switch_capacity}, random strategy")
switch_inputs = demo(args.switch_prompts_per_task, "switch-data") if "switching" in cases else None
switching = {} if "switching" not in cases else {
    "dynamic": run("switch-dynamic", switch_inputs, switch_bases, "random", args.switch_capacity),
    "unconstrained": run("switch-unconstrained", switch_inputs, switch_bases, "random", 0),
}
switch_identical = None if not switching else same_output(switching["dynamic"]["out"], switching["unconstrained"]["out"])

report = None
if results:
    report = os.path.join(results["dynamic"]["out"], "report.html")
    subprocess.run([laser, "report", results["dynamic"]["out"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def get(table, variant, key):
    return table[variant][key] if variant in table else None


line = {
    "static_s": get(results, "static", "wall_s"),
    "dynamic_s": get(results, "dynamic", "wall_s"),
    "unconstrained_s": get(results, "unconstrained", "wall_s"),
    "ensemble_s": get(results, "ensemble", "wall_s"),
    "dynamic_over_unconstrained": ratio(get(results, "dynamic", "wall_s"), get(results, "unconstrained", "wall_s")),
    "dynamic_over_ensemble": ratio(get(results, "dynamic", "wall_s"), get(results, "ensemble", "wall_s")),
    "static_over_unconstrained": ratio(get(results, "static", "wall_s"), get(results, "unconstrained", "wall_s")),
    "outputs_identical": identical,
    "loads": get(results, "dynamic", "loads"),
    "reloads": get(results, "dynamic", "reloads"),
    "switching_dynamic_s": get(switching, "dynamic", "wall_s"),
    "switching_unconstrained_s": get(switching, "unconstrained", "wall_s"),
    "switching_dynamic_over_unconstrained": ratio(get(switching, "dynamic", "wall_s"),
                                                  get(switching, "unconstrained", "wall_s")),
    "switching_reloads": get(switching, "dynamic", "reloads"),
    "switching_loads": get(switching, "dynamic", "loads"),
    "switching_outputs_identical": switch_identical,
    "settings": {"k": K, "workers": args.workers, "capacity": args.capacity, "ms_per_prompt": args.ms,
                 "load_ms": args.load_ms, "prompts": args.prompts_per_task * 3 * args.iterations,
                 "batch_size": args.batch_size, "pipeline_depth": args.pipeline_depth, "quick": args.quick,
                 "switch_k": len(switch_bases), "switch_capacity": args.switch_capacity},
    "targets": {"dynamic_over_unconstrained": 1.3, "dynamic_over_ensemble": 0.35},
    "report": report if args.keep else None,
}
if not args.keep:
    shutil.rmtree(work, ignore_errors=True)
else:
    log(f"kept {work}")
print(json.dumps(line))
