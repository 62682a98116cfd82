#!/usr/bin/env python3
"""laser's own cost per candidate, against bare libzmq, with real processes on loopback.

The job: one iteration of --prompts prompts, each with --candidates candidates of --bytes bytes, read
from a JSONL file; one `laser coordinator` and --workers `laser worker` processes; every RM call is
the NULL RM (kind `null-rm`: reads nothing, returns constant scores by candidate position), so what is
measured is laser's whole pipeline and nothing else: ingest the JSONL, shard, protobuf encode/decode,
ZeroMQ, schedule, select, build pairs, write batch files, journal.

Figures (each the median of --repeats runs, laser and the baseline alternating in one invocation):
- end-to-end candidates/s: candidates over the coordinator process's whole wall time, from its start
  (reading the input included) to its exit with every batch file written;
- coordinator CPU per candidate: the coordinator process's user + system CPU time over candidates;
- coordinator peak RSS (ru_maxrss);
- journal replay: `laser coordinator --resume` on the finished run directory (no workers): it reads
  the journal and the input again, rebuilds every decision, scores and emission, and finds nothing to do;
- the baseline: bench/zmq_baseline.c, the same sockets, payload, shard size and window, no laser logic.

With --laser-before OLD_BINARY, every repeat also runs an earlier build (the two take turns going
first), and the JSON gains "before" and the medians of the per-repeat ratios cpu_ratio_to_before and
wall_ratio_to_before: a before/after that the machine's drift between invocations cannot fake.

Run with bench/throughput.sh; the last line printed is one JSON object.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, log, reap, wait_for

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--laser", default=".build/release/laser")
ap.add_argument("--baseline", help="the compiled bench/zmq_baseline.c")
ap.add_argument("--laser-before", metavar="BINARY", help="an earlier laser build, run alternately with --laser in every repeat "
                "(before/after of a change, measured in the same invocation)")
ap.add_argument("--write-input", metavar="PATH", help="only write the generated input to PATH (for laser-bench ingest) and exit")
ap.add_argument("--prompts", type=int, default=100_000)
ap.add_argument("--candidates", type=int, default=8)
ap.add_argument("--bytes", type=int, default=1024)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--slots", type=int, default=4)
ap.add_argument("--batch-size", type=int, default=64)
ap.add_argument("--shard-size", type=int, default=4)
ap.add_argument("--pipeline-depth", type=int, default=4)
ap.add_argument("--strategy", default="linucb")
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--keep", action="store_true", help="keep the work folder")
args = ap.parse_args()

laser = os.path.abspath(args.laser)
before = os.path.abspath(args.laser_before) if args.laser_before else None
if not args.write_input and not args.baseline:
    ap.error("--baseline is required (bench/throughput.sh compiles it)")
work = tempfile.mkdtemp(prefix="laser-throughput-")


def generate(path):
    """--prompts lines; candidates of exactly --bytes characters of text (escapes included)."""
    rng = random.Random(7)
    words = ["the", "answer", "is", "so", "we", "add", "then", "multiply", "by", "which", "gives", "step",
             "first", "total", "each", "of", "and", "a", "number", "left", "\\n", "\\\"quoted\\\"", "42", "=", "+"]
    blocks = []
    for _ in range(256):
        text = ""
        while len(text) < args.bytes * 2:
            text += rng.choice(words) + " "
        blocks.append(text)

    # raw_end[b][n]: where block b's first n decoded characters end (an escape is 2 raw, 1 decoded).
    raw_end = []
    for body in blocks:
        ends, k = [0], 0
        while len(ends) <= args.bytes:
            k += 2 if body[k] == "\\" else 1
            ends.append(k)
        raw_end.append(ends)

    def candidate(i, j):
        # Unique per prompt and candidate, exactly --bytes characters once JSON-decoded.
        head = f"#{i}.{j} "
        b = (i * 31 + j) % 256
        return head + blocks[b][:raw_end[b][args.bytes - len(head)]]

    with open(path, "w") as f:
        for i in range(args.prompts):
            cands = ",".join(f'"{candidate(i, j)}"' for j in range(args.candidates))
            f.write(f'{{"id":"p{i}","prompt":"Question {i}: what is {i % 97} plus {i % 89}? Show your work.","candidates":[{cands}]}}\n')


def run_laser(data, laser=laser):
    rundir = tempfile.mkdtemp(prefix="run-", dir=work)
    config = os.path.join(rundir, "bench.yaml")
    with open(config, "w") as f:
        f.write(f"""input: [{data}]
strategy: {args.strategy}
batch_size: {args.batch_size}
shard_size: {args.shard_size}
pipeline_depth: {args.pipeline_depth}
pairs: {{mode: best-vs-worst}}
reward: {{allow_unrewarded: true}}  # unlabelled synthetic input: throughput only, the bandit learns nothing
reward_models:
  - {{name: null-rm, kind: null-rm}}
network: {{heartbeat_ms: 1000, liveness: 10, lease_ms: 120000}}
""")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = os.path.join(rundir, "out")
    logpath = os.path.join(rundir, "coordinator.log")
    started = time.monotonic()
    with open(logpath, "w") as logfile:
        coordinator = subprocess.Popen([laser, "coordinator", config, "--bind", endpoint, "--out", out, "--log-level", "warning"],
                                       stdout=subprocess.DEVNULL, stderr=logfile)
    workers = [subprocess.Popen([laser, "worker", "--connect", endpoint, "--id", f"w{i}", "--slots", str(args.slots),
                                 "--give-up-after", "60", "--log-level", "error"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(args.workers)]
    usage = wait_for(coordinator)
    wall = time.monotonic() - started
    worker_cpu = reap(workers, timeout=20)
    if coordinator.returncode != 0:
        args.keep = True
        raise SystemExit(f"coordinator failed; its log: {logpath}\n{open(logpath).read()[-3000:]}")
    summary = json.load(open(os.path.join(out, "summary.json")))
    pairs = sum(it.get("pairs", 0) for it in summary["iterations"])
    journal_bytes = os.path.getsize(os.path.join(out, "journal"))
    # Replay: resume the finished run; nothing is left to do, so this is reading and replaying only.
    t = time.monotonic()
    replay = subprocess.Popen([laser, "coordinator", "--resume", out, "--bind", f"tcp://127.0.0.1:{free_port()}", "--log-level", "warning"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    replay_usage = wait_for(replay)
    replay_s = time.monotonic() - t
    if replay.returncode != 0:
        raise SystemExit(f"resume of the finished run failed: {replay.stderr.read().decode()[-2000:]}")
    shutil.rmtree(rundir, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "worker_cpu_s": worker_cpu, "peak_rss_mb": usage.ru_maxrss / 1024,
            "pairs": pairs, "journal_mb": journal_bytes / 1e6, "replay_s": replay_s,
            "replay_peak_rss_mb": replay_usage.ru_maxrss / 1024}


def run_baseline():
    out = subprocess.run([os.path.abspath(args.baseline), f"tcp://127.0.0.1:{free_port()}", str(args.workers), str(args.prompts),
                          str(args.shard_size), str(args.candidates), str(args.bytes), str(args.slots)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


if args.write_input:
    generate(args.write_input)
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"input": args.write_input, "prompts": args.prompts, "bytes": os.path.getsize(args.write_input)}))
    sys.exit(0)

try:
    data = os.path.join(work, "input.jsonl")
    t = time.monotonic()
    generate(data)
    # Write the 852 MB out now: its write-back would otherwise run during the measured runs, sharing
    # the 2 cores and the disk with them (it made the coordinator's fsyncs and CPU time erratic).
    os.sync()
    size_mb = os.path.getsize(data) / 1e6
    log(f"input: {args.prompts} prompts x {args.candidates} candidates x {args.bytes} bytes = {size_mb:.0f} MB ({time.monotonic() - t:.1f} s to generate)")
    candidates = args.prompts * args.candidates
    lasers, bases, befores = [], [], []

    def show(name, r):
        log(f"  {name}: {candidates / r['wall_s']:,.0f} candidates/s ({r['wall_s']:.2f} s), coordinator CPU "
            f"{1e6 * r['cpu_s'] / candidates:.2f} us/candidate (workers {1e6 * r['worker_cpu_s'] / candidates:.2f}), peak RSS {r['peak_rss_mb']:.0f} MB, {r['pairs']} pairs, "
            f"journal {r['journal_mb']:.1f} MB, replay {r['replay_s']:.2f} s (peak RSS {r['replay_peak_rss_mb']:.0f} MB)")

    for rep in range(args.repeats):
        b = run_baseline()
        bases.append(b)
        log(f"  baseline {rep + 1}: {b['candidates_per_s']:,.0f} candidates/s ({b['seconds']:.2f} s, ROUTER CPU {b['router_cpu_s']:.2f} s)")
        # With --laser-before, the two builds take turns going first.
        order = [("laser", laser), ("before", before)] if before else [("laser", laser)]
        if before and rep % 2 == 1:
            order.reverse()
        for name, binary in order:
            r = run_laser(data, binary)
            (lasers if name == "laser" else befores).append(r)
            show(f"{name} {rep + 1}", r)
finally:
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)

med = lambda xs: statistics.median(xs)
laser_cps = med([candidates / r["wall_s"] for r in lasers])
base_cps = med([b["candidates_per_s"] for b in bases])
result = {
    "benchmark": "throughput", "prompts": args.prompts, "candidates_per_prompt": args.candidates, "candidate_bytes": args.bytes,
    "input_mb": round(size_mb, 1), "workers": args.workers, "slots": args.slots, "shard_size": args.shard_size,
    "batch_size": args.batch_size, "pipeline_depth": args.pipeline_depth, "strategy": args.strategy, "repeats": args.repeats,
    "cpus": os.cpu_count(),
    "laser_candidates_per_s": round(laser_cps), "baseline_candidates_per_s": round(base_cps),
    "ratio_to_baseline": round(laser_cps / base_cps, 3),
    "coordinator_cpu_us_per_candidate": round(med([1e6 * r["cpu_s"] / candidates for r in lasers]), 3),
    "worker_cpu_us_per_candidate": round(med([1e6 * r["worker_cpu_s"] / candidates for r in lasers]), 3),
    "baseline_router_cpu_us_per_candidate": round(med([1e6 * b["router_cpu_s"] / candidates for b in bases]), 3),
    # Machine-speed-independent: each laser run's coordinator CPU over the baseline's ROUTER CPU of the
    # same repeat (the machine's speed drifts between invocations).
    "cpu_ratio_to_baseline": round(med([r["cpu_s"] / b["router_cpu_s"] for r, b in zip(lasers, bases)]), 2),
    "coordinator_peak_rss_mb": round(med([r["peak_rss_mb"] for r in lasers]), 1),
    "journal_mb": round(med([r["journal_mb"] for r in lasers]), 2),
    "replay_s": round(med([r["replay_s"] for r in lasers]), 3),
    "replay_peak_rss_mb": round(med([r["replay_peak_rss_mb"] for r in lasers]), 1),
    "runs": {"laser_candidates_per_s": [round(candidates / r["wall_s"]) for r in lasers],
             "baseline_candidates_per_s": [round(b["candidates_per_s"]) for b in bases],
             "coordinator_cpu_us_per_candidate": [round(1e6 * r["cpu_s"] / candidates, 3) for r in lasers],
             "replay_s": [round(r["replay_s"], 3) for r in lasers]},
}
if befores:
    result["before"] = {
        "laser_candidates_per_s": round(med([candidates / r["wall_s"] for r in befores])),
        "coordinator_cpu_us_per_candidate": round(med([1e6 * r["cpu_s"] / candidates for r in befores]), 3),
        "cpu_ratio_to_baseline": round(med([r["cpu_s"] / b["router_cpu_s"] for r, b in zip(befores, bases)]), 2),
        "replay_s": round(med([r["replay_s"] for r in befores]), 3),
        "runs": {"laser_candidates_per_s": [round(candidates / r["wall_s"]) for r in befores],
                 "coordinator_cpu_us_per_candidate": [round(1e6 * r["cpu_s"] / candidates, 3) for r in befores]},
    }
    # Per repeat, this build's CPU and wall time over the earlier build's (same repeat, same baseline).
    result["cpu_ratio_to_before"] = round(med([r["cpu_s"] / o["cpu_s"] for r, o in zip(lasers, befores)]), 3)
    result["wall_ratio_to_before"] = round(med([r["wall_s"] / o["wall_s"] for r, o in zip(lasers, befores)]), 3)
print(f"{'':32} {'laser':>12} {'bare libzmq':>12} {'ratio':>7}")
print(f"{'candidates/s (end to end)':32} {laser_cps:>12,.0f} {base_cps:>12,.0f} {laser_cps / base_cps:>7.3f}")
print(f"{'coordinator CPU us/candidate':32} {result['coordinator_cpu_us_per_candidate']:>12.3f} {result['baseline_router_cpu_us_per_candidate']:>12.3f} {result['cpu_ratio_to_baseline']:>7.2f}")
print(f"coordinator peak RSS {result['coordinator_peak_rss_mb']} MB; journal {result['journal_mb']} MB, replay {result['replay_s']} s")
if befores:
    print(f"against --laser-before: coordinator CPU x{result['cpu_ratio_to_before']}, wall time x{result['wall_ratio_to_before']} "
          f"(medians of per-repeat ratios; before: {result['before']['laser_candidates_per_s']:,} candidates/s, {result['before']['coordinator_cpu_us_per_candidate']} us/candidate)")
print(json.dumps(result))
