#!/usr/bin/env python3
"""Benchmark: worker throughput against a real transformers RM server (examples/rm-servers/hf_rm_server.py,
a tiny Llama classifier made on the spot, CPU) with and without request batching, in one invocation.

Configurations, run alternately `--repeats` times each (median reported):
  unbatched  max_batch: 1   one HTTP request per candidate (what a naive client does)
  batched    max_batch: 64  a task's prompts packed whole into one request, queued tasks coalesced
Both: strategy fixed (the classifier through vllm-classify), 1 local worker with 4 slots, shard_size 4.
Prints one JSON line: candidates/s each, and the ratio batched / unbatched.

    bench/hf-server-batching.sh [--prompts 96] [--candidates 8] [--repeats 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
LASER = os.environ.get("LASER_BIN", os.path.join(ROOT, ".build", "release", "laser"))


def start_server(models):
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "rm-servers", "hf_rm_server.py"),
                             "--rm", os.path.join(models, "rm"), "--port", "0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if "listening on " in line:
            return proc, line.split("listening on ")[1].strip()
    raise SystemExit("the server did not start")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="laser-hf-bench-")
    subprocess.run([sys.executable, os.path.join(ROOT, "examples", "rm-servers", "make_tiny_models.py"), work], check=True,
                   capture_output=True)
    server, url = start_server(work)
    try:
        with open(os.path.join(work, "input.jsonl"), "w") as f:
            for p in range(args.prompts):
                prompt = "Maria saves %d dollars each week for %d weeks. How much does she save?" % (p % 13 + 2, p % 7 + 3)
                cands = [{"text": "Let us think step by step. %d*%d=%d. The answer is %d." % (p, c, p * c, p * c + c % 3)}
                         for c in range(args.candidates)]
                f.write(json.dumps({"id": "p%d" % p, "prompt": prompt, "candidates": cands}) + "\n")
        rates = {"unbatched": [], "batched": []}
        for r in range(args.repeats):
            for name, max_batch in (("unbatched", 1), ("batched", 64)):
                config = {"input": ["input.jsonl"], "seed": 1, "strategy": "fixed", "fixed_rm": "rm", "batch_size": 16,
                          "shard_size": 4, "pipeline_depth": 4,
                          "reward": {"source": "label-pair-accuracy", "allow_unrewarded": True},
                          "reward_models": [{"name": "rm", "kind": "http", "params": {
                              "url": url + "/classify", "api": "vllm-classify", "max_batch": str(max_batch), "version": "0.14.1"}}],
                          "workers": {"local": 1, "slots": 4}}
                path = os.path.join(work, "%s-%d.yaml" % (name, r))
                with open(path, "w") as f:
                    json.dump(config, f)
                out = os.path.join(work, "run-%s-%d" % (name, r))
                start = time.time()
                subprocess.run([LASER, "run", path, "--out", out], check=True, capture_output=True)
                with open(os.path.join(out, "summary.json")) as f:
                    summary = json.load(f)
                it = summary["iterations"][0]
                scored = sum(it["rm_calls"].values())
                rates[name].append(round(scored / it["wall_seconds"], 1))
                print("%s run %d: %d candidates in %.2f s (process %.2f s)" % (name, r + 1, scored, it["wall_seconds"], time.time() - start),
                      file=sys.stderr)
        result = {"benchmark": "hf-server-batching", "server": "examples/rm-servers/hf_rm_server.py (tiny Llama classifier, CPU)",
                  "prompts": args.prompts, "candidates_per_prompt": args.candidates, "repeats": args.repeats,
                  "unbatched_candidates_per_s": statistics.median(rates["unbatched"]),
                  "batched_candidates_per_s": statistics.median(rates["batched"]), "runs": rates}
        result["ratio_batched_to_unbatched"] = round(result["batched_candidates_per_s"] / result["unbatched_candidates_per_s"], 2)
        print(json.dumps(result))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
