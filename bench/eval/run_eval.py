#!/usr/bin/env python3
"""Reproduces the LASeR paper's comparison with laser on real data (GSM8K) and on the built-in demo.

Every training run is a real `laser run` (coordinator + local `laser worker` processes over ZeroMQ)
with `reward: {source: trainer-loss}`, and this script is its trainer: it connects to the coordinator
(bench/eval/sync_trainer.py, the messages of clients/python/laser_trainer.py on one thread), takes one
DPO + NLL step of the STAND-IN policy
(bench/eval/standin_policy.py: a log-linear re-ranker, not an LLM) per mini-batch and reports the
loss, which laser turns into the bandit's reward, as in the paper. After the run the stand-in's
held-out accuracy is measured on the test prompts (which laser never sees).

    python3 bench/eval/run_eval.py --quick            # smoke check, under a minute
    python3 bench/eval/run_eval.py                    # the full evaluation of docs/evaluation.md
    python3 bench/eval/run_eval.py --report-only --out runs/eval   # tables from finished runs

Needs the release binary (swift build -c release), Python 3 with pyzmq and protobuf, and for GSM8K
the shared data folder (../shared/data/gsm8k next to the main checkout, or --gsm8k DIR). Results go to
--out (default runs/eval, git-ignored); finished runs are reused, so an interrupted evaluation
continues where it stopped. The tables are written to OUT/report.md.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "clients", "python"))

import eval_data  # noqa: E402
import reward_study  # noqa: E402
import standin_policy  # noqa: E402
import sync_trainer  # noqa: E402

# -- what is compared ----------------------------------------------------------------------------

# Reference-free RMs on GSM8K (as in the paper, no RM sees the answer). The order is the bandit's arm
# order (ties go to arm 0), the same as the demo's.
GSM8K_RMS = [
    ("length", "length", {"prefer": "shorter"}),
    ("self-consistency", "self-consistency", {}),
    ("arithmetic-check", "arithmetic-check", {}),
    ("instruction-following", "instruction-following", {}),
]
ORACLE_RM = ("answer-match", "answer-match", {})  # with GSM8K's reference: the true label
DEMO_RMS = GSM8K_RMS + [ORACLE_RM]                # the demo's five RMs (laser demo-data)

NOISE_SIGMA = 0.3


def methods_for(rms, alphas):
    ms = [("fixed:" + name, {"strategy": "fixed", "fixed_rm": name}) for name, _, _ in rms]
    ms += [("random", {"strategy": "random"}),
           ("sequential", {"strategy": "sequential"}),
           ("ensemble", {"strategy": "ensemble"})]
    for a in alphas:
        ms += [("linucb a=%g" % a, {"strategy": "linucb", "alpha": a}),
               ("linucb-instance a=%g" % a, {"strategy": "linucb", "alpha": a, "granularity": "instance"})]
    ms += [("exp3", {"strategy": "exp3"})]
    # Diagnostic, not the paper's method: the same bandit rewarded with laser's label-based pair
    # accuracy (needs correctness labels) instead of the trainer's loss.
    for a in alphas:
        ms += [("linucb a=%g, label reward" % a, {"strategy": "linucb", "alpha": a, "reward": "label-pair-accuracy"})]
    return ms


class Setting:
    """One dataset with its RMs, sizes and run parameters (fixed before looking at any test result)."""

    def __init__(self, name, rms, batch_size, iterations, context_dim, methods, conditions):
        self.name, self.rms, self.batch_size, self.iterations = name, rms, batch_size, iterations
        self.context_dim, self.methods, self.conditions = context_dim, methods, conditions


def settings(args):
    alphas = [0.1, 2.0]  # the paper's (laser's default) and laser's demo config
    conds = args.conditions
    out = []
    if "gsm8k" in args.datasets:
        it = 1 if args.quick else 3
        out.append(Setting("gsm8k", GSM8K_RMS, 16, it, 256, methods_for(GSM8K_RMS, alphas), conds))
        if not args.quick:
            oracle = GSM8K_RMS + [ORACLE_RM]
            ms = [("fixed:answer-match", {"strategy": "fixed", "fixed_rm": "answer-match"}), ("random", {"strategy": "random"})]
            for a in alphas:
                ms += [("linucb a=%g" % a, {"strategy": "linucb", "alpha": a}),
                       ("linucb-instance a=%g" % a, {"strategy": "linucb", "alpha": a, "granularity": "instance"})]
            ms += [("exp3", {"strategy": "exp3"})]
            ms += [("linucb a=%g, label reward" % a, {"strategy": "linucb", "alpha": a, "reward": "label-pair-accuracy"}) for a in alphas]
            out.append(Setting("gsm8k+oracle", oracle, 16, it, 256, ms, ["clean"]))
    if "demo" in args.datasets:
        it = 2 if args.quick else 5
        out.append(Setting("demo", DEMO_RMS, 8, it, 128, methods_for(DEMO_RMS, alphas), conds))
    return out


# -- data ----------------------------------------------------------------------------------------

class Data:
    def __init__(self, iterations, test):
        self.iterations = iterations  # list of lists of train records
        self.test = test
        self.train = []
        seen = set()
        for its in iterations:
            for r in its:
                if r["id"] not in seen:
                    seen.add(r["id"])
                    self.train.append(r)
        self.tasks = sorted({r["task"] for r in self.train + self.test})
        self.table = standin_policy.FeatureTable(self.train, self.train + self.test, self.tasks)


_data_cache = {}


def load_data(args, setting, seed, workdir):
    """The train iterations and test prompts of a setting for a seed (the same for every method)."""
    key = (setting.name.split("+")[0], seed)
    if key not in _data_cache:
        _data_cache.clear()
        if key[0] == "gsm8k":
            recs = eval_data.load_gsm8k(args.gsm8k, limit=args.gsm8k_limit)
            its = eval_data.gsm8k_iterations(recs, setting.iterations, seed)
            _data_cache[key] = Data(its, [r for r in recs if eval_data.is_test(r["prompt"])])
        else:
            its, test = eval_data.demo_iterations(args.laser, workdir, setting.iterations, args.demo_prompts, seed, setting.batch_size)
            _data_cache[key] = Data(its, test)
    return _data_cache[key]


# -- one run -------------------------------------------------------------------------------------

def yaml_str(s):
    return json.dumps(str(s))


def rm_yaml(name, kind, params, condition, noisy_rm, latency_ms, index):
    """An RM entry: latency-wrapped in the clean condition (a SIMULATION of a slow RM; the scores are
    the base RM's), noise-wrapped under noise."""
    noisy = condition == "noise-all" or (condition == "noise-one" and name == noisy_rm)
    p = dict(params)
    if noisy:
        p = dict(p, base=kind, sigma=str(NOISE_SIGMA), seed=str(101 + index))
        kind = "noisy"
    elif latency_ms > 0:
        p = dict(p, base=kind, ms=str(latency_ms))
        kind = "simulated-latency"
    lines = ["  - name: %s" % yaml_str(name), "    kind: %s" % yaml_str(kind)]
    if p:
        lines.append("    params:")
        lines += ["      %s: %s" % (k, yaml_str(v)) for k, v in sorted(p.items())]
    return "\n".join(lines)


def write_config(path, inputs, setting, method, seed, condition, noisy_rm, latency_ms, workers):
    m = method
    lines = ["# written by bench/eval/run_eval.py", "input:"] + ["  - %s" % yaml_str(p) for p in inputs]
    if m.get("preset"):
        lines.append("preset: %s" % m["preset"])
    if m.get("priors"):
        lines += ["thompson:", "  v: %g" % m.get("v", 0.5), "  priors: %s" % yaml_str(m["priors"])]
    elif m["strategy"] == "thompson":
        lines += ["thompson:", "  v: %g" % m.get("v", 0.5)]
    lines += ["iterations: %d" % len(inputs), "seed: %d" % seed, "strategy: %s" % m["strategy"]]
    if m.get("fixed_rm"):
        lines.append("fixed_rm: %s" % yaml_str(m["fixed_rm"]))
    lines += ["linucb:", "  alpha: %g" % m.get("alpha", 0.1), "  lambda: 1.0",
              "granularity: %s" % m.get("granularity", "batch"),
              "batch_size: %d" % setting.batch_size, "shard_size: 4", "pipeline_depth: 1",
              "context:", "  dimension: %d" % m.get("context_dim", setting.context_dim), "  ngrams: 2",
              "pairs:", "  mode: best-vs-rest", "  max_pairs: 10", "  margin: 0.0",
              "reward:", "  source: %s" % m.get("reward", "trainer-loss"), "  normalize: true",
              "  probe_size: %d" % m.get("probe_size", 64),
              "  probe_consensus: %s" % m.get("probe_consensus", "unanimous"),
              "bandit:", "  warm_start: %s" % m.get("warm_start", "none"), "  ties: %s" % m.get("ties", "first"),
              "  first_reward: %s" % m.get("first_reward", "paper"),
              "workers:", "  local: %d" % workers, "  slots: 1",
              "reward_models:"]
    lines += [rm_yaml(n, k, p, condition, noisy_rm, latency_ms, i) for i, (n, k, p) in enumerate(setting.rms)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


_written_inputs = {}


def shared_inputs(args, setting, data, seed):
    """The train input files of a (dataset, seed), written once per invocation and shared by all
    methods and conditions (they are the same data; a copy per run would take 4 MB each)."""
    key = (setting.name.split("+")[0], seed)
    if key not in _written_inputs:
        folder = os.path.join(args.out, "work", "inputs", "%s-seed%d" % key)
        _written_inputs[key] = eval_data.write_inputs(data.iterations, folder)
    return _written_inputs[key]


def run_one(args, setting, data, label, method, seed, condition, noisy_rm, run_dir):
    """A laser run with this script as its trainer; returns the result record."""
    if os.path.exists(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir)
    inputs = shared_inputs(args, setting, data, seed)
    latency = args.latency_ms if condition == "clean" else 0
    config = os.path.join(run_dir, "eval-config.yaml")
    write_config(config, inputs, setting, method, seed, condition, noisy_rm, latency, args.workers)
    laser_dir = os.path.join(run_dir, "laser")
    log = open(os.path.join(run_dir, "laser.log"), "w")
    started = time.monotonic()
    proc = subprocess.Popen([args.laser, "run", config, "--out", laser_dir, "--no-progress"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=run_dir)
    endpoint_file = os.path.join(laser_dir, "endpoint")
    while not os.path.exists(endpoint_file):
        if proc.poll() is not None:
            raise RuntimeError("laser run exited with %s before listening; see %s/laser.log" % (proc.returncode, run_dir))
        if time.monotonic() - started > 60:
            proc.kill()
            raise RuntimeError("laser run did not start within 60 s; see %s/laser.log" % run_dir)
        time.sleep(0.02)
    with open(endpoint_file) as f:
        endpoint = f.read().strip()

    policy = standin_policy.StandInPolicy(data.table, beta=0.1, nll_weight=1.0, lr=args.lr)
    by_iteration, losses = [], {}
    state = {"steps": 0, "current": 1}

    reward = method.get("reward", "trainer-loss")
    probe = []
    rewards = {}

    def step(batch):
        while batch.iteration > state["current"]:  # the policy after each iteration, on the test prompts
            by_iteration.append(policy.accuracy(data.test)[0])
            state["current"] += 1
        pairs = list(batch.pairs)
        # The probe's loss: the training loss, or (method "probe_loss": "dpo") its DPO term alone.
        probe_nll = method.get("probe_loss", "train") != "dpo"
        probe_before = policy.loss(probe, nll=probe_nll) if reward == "probe-progress" else None
        loss = policy.step(pairs)
        state["steps"] += 1
        losses.setdefault(batch.reward_model, []).append(loss)
        if reward == "prediction-gain":
            after = policy.loss(pairs)
            rewards.setdefault(batch.reward_model, []).append(loss - after)
            return {"loss": loss, "loss_after": after}
        if reward == "probe-progress":
            after = policy.loss(probe, nll=probe_nll)
            rewards.setdefault(batch.reward_model, []).append(probe_before - after)
            return {"loss": loss, "probe_before": probe_before, "probe_after": after}
        return loss

    refused = sync_trainer.train(endpoint, step, alive=lambda: proc.poll() is None,
                                 report=reward in ("trainer-loss", "prediction-gain", "probe-progress"),
                                 on_probe=probe.extend)
    steps = state["steps"]
    while len(by_iteration) < len(data.iterations):
        by_iteration.append(policy.accuracy(data.test)[0])
    try:
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise RuntimeError("laser run did not finish; see %s/laser.log" % run_dir)
    log.close()
    if rc != 0:
        raise RuntimeError("laser run failed (exit %d); see %s/laser.log" % (rc, run_dir))
    process_wall = time.monotonic() - started
    with open(os.path.join(laser_dir, "summary.json")) as f:
        summary = json.load(f)
    overall, per_task = policy.accuracy(data.test)
    its = summary["iterations"]
    lab = sum(i.get("labelled_pairs", 0) for i in its)
    correct = sum(i.get("labelled_pairs", 0) * (i.get("label_accuracy") or 0) for i in its)
    net = {}
    for i in its:
        for t in i["tasks"]:
            n = t.get("labelled_pairs", 0)
            a = t.get("label_accuracy") or 0
            net[t["task"]] = net.get(t["task"], 0) + n * (2 * a - 1)
    selections = [{t["task"]: t.get("selections", {}) for t in i["tasks"]} for i in its]
    return {
        "setting": setting.name, "method": label, "seed": seed, "condition": condition,
        "heldout": overall, "heldout_per_task": per_task, "heldout_by_iteration": by_iteration,
        "pair_accuracy": correct / lab if lab else None, "pairs": sum(i["pairs"] for i in its),
        "labelled_pairs": lab, "net_correct_pairs_per_task": net,
        "pair_accuracy_per_task": _pair_acc_per_task(its),
        "rm_calls": sum(sum(i.get("rm_calls", {}).values()) for i in its),
        "wall_s": sum(i.get("wall_seconds", 0) for i in its), "process_wall_s": process_wall,
        "steps": steps, "losses_accepted": summary["counters"]["losses_accepted"], "refused": len(refused),
        "mean_loss_per_rm": {k: sum(v) / len(v) for k, v in losses.items()},
        "mean_reward_per_rm": {k: sum(v) / len(v) for k, v in rewards.items()},
        "probe": summary.get("probe"),
        "selections": selections, "latency_ms": latency, "noisy_rm": noisy_rm if condition == "noise-one" else None,
        "theta": policy.theta, "inputs": [os.path.relpath(p, args.out) for p in inputs],
    }


def _pair_acc_per_task(its):
    acc = {}
    for i in its:
        for t in i["tasks"]:
            n, a = t.get("labelled_pairs", 0), t.get("label_accuracy")
            if n and a is not None:
                c, m = acc.get(t["task"], (0.0, 0))
                acc[t["task"]] = (c + n * a, m + n)
    return {k: c / m for k, (c, m) in acc.items() if m}


# -- agreement between RMs and best-of-n from the RMs' own scores ---------------------------------

def scores_from_batches(run_dir, data):
    """Per prompt, each candidate's score under a fixed RM, recovered from the run's first-iteration
    batch files: every pair that is not an exact tie is emitted (at most 10 per prompt, which covers
    all 6 pairs of 4 candidates, and every candidate against the best of 6), and a candidate that
    appears in no pair ties with the best. Returns {prompt_id: [score per candidate]}."""
    out = {}
    folder = os.path.join(run_dir, "laser", "iterations", "0001")
    seen = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as f:
            for line in f:
                p = json.loads(line)
                d = seen.setdefault(p["prompt_id"], {})
                d[p["chosen"]] = p["chosen_score"]
                d[p["rejected"]] = p["rejected_score"]
    for r in data.iterations[0]:
        d = seen.get(r["id"], {})
        top = max(d.values()) if d else 0.0
        out[r["id"]] = [d.get(c["text"], top) for c in r["candidates"]]
    return out


def agreement_matrix(per_rm, data):
    """For each task family and each two RMs: over the candidate pairs (i, j) of each prompt that
    both RMs order strictly, the share they order the same way; and how often both have an opinion.
    'labels' is the truth (pairs of a right and a wrong candidate)."""
    names = list(per_rm) + ["labels"]
    recs = {r["id"]: r for r in data.iterations[0]}
    res = {}
    for task in data.tasks:
        ids = [pid for pid, r in recs.items() if r["task"] == task]
        if not ids:
            continue
        m = {}
        for a in names:
            for b in names:
                agree = both = total = 0
                for pid in ids:
                    r = recs[pid]
                    sa = per_rm[a][pid] if a != "labels" else [float(c["correct"]) for c in r["candidates"]]
                    sb = per_rm[b][pid] if b != "labels" else [float(c["correct"]) for c in r["candidates"]]
                    n = len(sa)
                    for i in range(n):
                        for j in range(i + 1, n):
                            total += 1
                            da, db = sa[i] - sa[j], sb[i] - sb[j]
                            if da and db:
                                both += 1
                                agree += (da > 0) == (db > 0)
                m[(a, b)] = (agree / both if both else None, both / total if total else 0)
        res[task] = (names, m)
    return res


def best_of_n_runs(args, setting, data, workdir):
    """Each RM (fixed) as a best-of-n re-ranker on the TEST prompts, no policy: laser's mode
    best-of-n with the label-based reward; accuracy = share of prompts whose pick is right."""
    out = {}
    test_inputs = eval_data.write_inputs([data.test], os.path.join(workdir, "input"))
    for name, _, _ in setting.rms:
        run_dir = os.path.join(workdir, name)
        if os.path.exists(run_dir):
            shutil.rmtree(run_dir)
        cfg = os.path.join(workdir, name + ".yaml")
        write_config(cfg, test_inputs, setting, {"strategy": "fixed", "fixed_rm": name}, 1, "clean", None, 0, args.workers)
        with open(cfg) as f:
            text = f.read().replace("source: trainer-loss", "source: label-pair-accuracy").replace("granularity: batch\n", "granularity: instance\nmode: best-of-n\n")
        with open(cfg, "w") as f:
            f.write(text)
        subprocess.run([args.laser, "run", cfg, "--out", run_dir, "--no-progress"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(run_dir, "summary.json")) as f:
            s = json.load(f)
        out[name] = {t["task"]: t.get("label_accuracy") for t in s["iterations"][0]["tasks"]}
        out[name]["all"] = s["iterations"][0].get("label_accuracy")
    return out


# -- the evaluation ------------------------------------------------------------------------------

def result_path(out, setting, condition, label, seed):
    safe = label.replace(" ", "_").replace(":", "-").replace("=", "")
    return os.path.join(out, "results", setting, condition, "%s.seed%d.json" % (safe, seed))


def pick_best_rm(results, setting, seeds):
    """The "best single RM", chosen on the TRAIN split only: the RM whose fixed runs (clean) emit the
    most label-correct minus label-wrong pairs, summed over seeds and task families."""
    score = {}
    for name, _, _ in setting.rms:
        for seed in seeds:
            r = results.get((setting.name, "clean", "fixed:" + name, seed))
            if r:
                score[name] = score.get(name, 0) + sum(r["net_correct_pairs_per_task"].values())
    return max(score, key=score.get) if score else None


def run_all(args):
    os.makedirs(args.out, exist_ok=True)
    results = {}
    t0 = time.monotonic()
    seeds = list(range(1, args.seeds + 1))
    extras = {}
    for setting in settings(args):
        conditions = [c for c in ["clean", "noise-one", "noise-all"] if c in setting.conditions]
        for condition in conditions:
            for seed in seeds:
                workdir = os.path.join(args.out, "work")
                data = load_data(args, setting, seed, workdir)
                # The SFT row: the untrained policy (theta = 0).
                sft = standin_policy.StandInPolicy(data.table)
                acc, per = sft.accuracy(data.test)
                r = {"setting": setting.name, "condition": condition, "method": "no training (SFT)", "seed": seed,
                     "heldout": acc, "heldout_per_task": per, "rm_calls": 0, "pairs": 0}
                results[(setting.name, condition, r["method"], seed)] = r
                path = result_path(args.out, setting.name, condition, r["method"], seed)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    json.dump(r, f)
                noisy_rm = None
                if condition == "noise-one":
                    noisy_rm = pick_best_rm(results, setting, seeds)
                    if noisy_rm is None:
                        sys.exit("noise-one needs the clean fixed-RM runs first (they pick the RM that gets the noise)")
                for label, method in setting.methods:
                    path = result_path(args.out, setting.name, condition, label, seed)
                    if os.path.exists(path) and not args.rerun:
                        with open(path) as f:
                            results[(setting.name, condition, label, seed)] = json.load(f)
                        continue
                    run_dir = os.path.join(args.out, "runs", setting.name, condition, os.path.basename(path)[:-5])
                    t = time.monotonic()
                    r = run_one(args, setting, data, label, method, seed, condition, noisy_rm, run_dir)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "w") as f:
                        json.dump(r, f)
                    results[(setting.name, condition, label, seed)] = r
                    print("%-12s %-9s seed %d %-26s held-out %.3f  pair acc %s  %.1f s (total %.0f s)" % (
                        setting.name, condition, seed, label, r["heldout"],
                        "%.3f" % r["pair_accuracy"] if r["pair_accuracy"] is not None else "n/a",
                        time.monotonic() - t, time.monotonic() - t0), flush=True)
        # Agreement matrix (clean fixed runs of the first seed) and best-of-n of each RM on the test set.
        if setting.name != "gsm8k+oracle":
            data = load_data(args, setting, seeds[0], os.path.join(args.out, "work"))
            per_rm = {}
            for name, _, _ in setting.rms:
                run_dir = os.path.join(args.out, "runs", setting.name, "clean",
                                       os.path.basename(result_path(args.out, setting.name, "clean", "fixed:" + name, seeds[0]))[:-5])
                per_rm[name] = scores_from_batches(run_dir, data)
            am = agreement_matrix(per_rm, data)
            bon = best_of_n_runs(args, setting, data, os.path.join(args.out, "best-of-n", setting.name))
            extras[setting.name] = {"agreement": {t: {"names": n, "m": {"%s|%s" % k: v for k, v in m.items()}} for t, (n, m) in am.items()},
                                    "best_of_n": bon, "tasks": data.tasks,
                                    "sizes": {"train_prompts": len(data.train), "test_prompts": len(data.test),
                                              "iterations": len(data.iterations),
                                              "train_prompts_per_iteration": [len(x) for x in data.iterations]}}
            with open(os.path.join(args.out, "extras-%s.json" % setting.name), "w") as f:
                json.dump(extras[setting.name], f)
    print("all runs done in %.0f s" % (time.monotonic() - t0))
    return time.monotonic() - t0


# -- the report ----------------------------------------------------------------------------------

def load_results(out):
    results = {}
    root = os.path.join(out, "results")
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name)) as f:
                r = json.load(f)
            results[(r["setting"], r["condition"], r["method"], r["seed"])] = r
    return results


def selection_windows(out, setting, label, seeds, windows=10):
    """{task: {rm: [share of that task's batches ranked by rm, per window]}} from each clean run's
    selections.jsonl; a batch's task family is read from the run's own input files (the family of
    most of its prompts)."""
    acc = {}
    for seed in seeds:
        run_dir = os.path.join(out, "runs", setting.name, "clean",
                               os.path.basename(result_path(out, setting.name, "clean", label, seed))[:-5])
        sel_path = os.path.join(run_dir, "laser", "selections.jsonl")
        if not os.path.exists(sel_path):
            continue
        with open(result_path(out, setting.name, "clean", label, seed)) as f:
            inputs = [os.path.join(out, p) for p in json.load(f).get("inputs", [])]
        if not inputs:  # results from before the inputs were shared: a copy in the run folder
            inputs, it = [], 1
            while os.path.exists(os.path.join(run_dir, "input", "iteration-%d.jsonl" % it)):
                inputs.append(os.path.join(run_dir, "input", "iteration-%d.jsonl" % it))
                it += 1
        tasks_of = {}
        for it, path in enumerate(inputs, 1):
            with open(path) as f:
                tasks_of[it] = [json.loads(line)["task"] for line in f if line.strip()]
        with open(sel_path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        per_task = {}
        for r in rows:
            lo = (r["batch"] - 1) * setting.batch_size
            fam = tasks_of[r["iteration"]][lo:lo + r["prompts"]]
            task = max(sorted(set(fam)), key=fam.count)  # ties (a mixed leftover batch): first by name
            per_task.setdefault(task, []).append(r["rm"])
        for task, rms in per_task.items():
            for w in range(windows):
                chunk = rms[w * len(rms) // windows:(w + 1) * len(rms) // windows]
                for n, _, _ in setting.rms:
                    share = chunk.count(n) / len(chunk) if chunk else 0.0
                    acc.setdefault(task, {}).setdefault(n, [[] for _ in range(windows)])[w].append(share)
    return {t: {n: [statistics.mean(v) if v else 0.0 for v in ws] for n, ws in d.items()} for t, d in acc.items()}


def ms(values, fmt="%.3f", pct=False):
    vs = [v for v in values if v is not None]
    if not vs:
        return "n/a"
    scale = 100.0 if pct else 1.0
    if pct:
        fmt = "%.1f"
    m = statistics.mean(vs) * scale
    if len(vs) == 1:
        return fmt % m
    return (fmt % m) + " ± " + (fmt % (statistics.stdev(vs) * scale))


def report(args, runtime=None):
    results = load_results(args.out)
    if not results:
        sys.exit("no results under %s/results: run the evaluation first" % args.out)
    seeds = sorted({k[3] for k in results})
    lines = ["# laser evaluation report", "",
             "Generated by `bench/eval/run_eval.py`; %d seeds (%s); mean ± sample standard deviation over seeds." % (len(seeds), ", ".join(map(str, seeds))), ""]
    if runtime:
        lines += ["Run time of this invocation: %.0f s (runs reused from an earlier invocation not counted)." % runtime, ""]
    for setting in settings(args):
        have = [k for k in results if k[0] == setting.name]
        if not have:
            continue
        ex = {}
        ep = os.path.join(args.out, "extras-%s.json" % setting.name)
        if os.path.exists(ep):
            with open(ep) as f:
                ex = json.load(f)
        tasks = ex.get("tasks") or sorted({t for k in have for t in results[k].get("heldout_per_task", {})})
        labels = ["no training (SFT)"] + [m[0] for m in setting.methods]
        best = pick_best_rm(results, setting, seeds)
        lines += ["## %s" % setting.name, ""]
        if ex.get("sizes"):
            s = ex["sizes"]
            lines += ["%d train prompts (%d iterations over them), %d test prompts; RMs: %s." % (
                s["train_prompts"], s["iterations"], s["test_prompts"], ", ".join(n for n, _, _ in setting.rms)), ""]
        if best:
            lines += ["Best single RM (chosen on the train split: most label-correct minus label-wrong pairs): **%s**." % best, ""]
        # main table
        for condition in ["clean", "noise-one", "noise-all"]:
            if not any(k[1] == condition for k in have):
                continue
            title = {"clean": "clean RM scores; RMs wrapped in simulated-latency (%g ms per prompt, a SIMULATION) for the wall-time column" % args.latency_ms,
                     "noise-one": "Gaussian noise sigma = %g on one RM (%s)" % (NOISE_SIGMA, best),
                     "noise-all": "Gaussian noise sigma = %g on every RM" % NOISE_SIGMA}[condition]
            lines += ["### %s: %s" % (setting.name, title), ""]
            head = ["method", "held-out acc %"] + (["  " + t for t in tasks] if len(tasks) > 1 else []) + \
                   ["pair acc (train pairs)", "pairs", "RM calls"] + (["wall s"] if condition == "clean" else [])
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            rows = labels[:]
            if best and "fixed:" + best in rows:
                rows.insert(rows.index("fixed:" + best) + 0, "best single RM (= fixed:%s)" % best)
            for label in rows:
                key_label = "fixed:" + best if label.startswith("best single RM") else label
                rs = [results[k] for k in results if k[0] == setting.name and k[1] == condition and k[2] == key_label]
                if not rs:
                    continue
                row = [("**%s**" % label) if label.startswith("best") else label, ms([r["heldout"] for r in rs], pct=True)]
                if len(tasks) > 1:
                    row += [ms([r["heldout_per_task"].get(t) for r in rs], pct=True) for t in tasks]
                row += [ms([r.get("pair_accuracy") for r in rs]), ms([r.get("pairs") for r in rs], "%.0f"),
                        ms([r.get("rm_calls") for r in rs], "%.0f")]
                if condition == "clean":
                    row.append(ms([r.get("wall_s") for r in rs], "%.1f") if "wall_s" in rs[0] else "-")
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
        # robustness summary
        if any(k[1] != "clean" for k in have):
            lines += ["### %s: robustness (held-out acc %%, change against clean in points)" % setting.name, "",
                      "| method | clean | noise on %s | noise on all |" % best, "|---|---|---|---|"]
            for label in labels[1:]:
                vals = {}
                for c in ["clean", "noise-one", "noise-all"]:
                    vals[c] = [results[k]["heldout"] for k in results if k[0] == setting.name and k[1] == c and k[2] == label]
                if not vals["clean"]:
                    continue
                base = statistics.mean(vals["clean"]) * 100
                cells = [ms(vals["clean"], pct=True)]
                for c in ["noise-one", "noise-all"]:
                    cells.append("%s (%+.1f)" % (ms(vals[c], pct=True), statistics.mean(vals[c]) * 100 - base) if vals[c] else "n/a")
                lines.append("| %s | %s |" % (label, " | ".join(cells)))
            lines.append("")
        # learning curve: held-out accuracy after each iteration (clean)
        curves = [(label, [results[k]["heldout_by_iteration"] for k in results
                           if k[0] == setting.name and k[1] == "clean" and k[2] == label and "heldout_by_iteration" in results[k]])
                  for label in labels[1:]]
        curves = [(l, c) for l, c in curves if c]
        if curves and len(curves[0][1][0]) > 1:
            n_it = len(curves[0][1][0])
            lines += ["### %s: held-out accuracy %% of the stand-in after each iteration (clean, mean over seeds)" % setting.name, "",
                      "| method | " + " | ".join("it %d" % (i + 1) for i in range(n_it)) + " |", "|---|" + "---|" * n_it]
            for label, cs in curves:
                lines.append("| %s | %s |" % (label, " | ".join("%.1f" % (100 * statistics.mean(c[i] for c in cs)) for i in range(n_it))))
            lines.append("")
        # selection shares per task family over iterations
        for label in [m[0] for m in setting.methods if m[0].startswith("linucb") or m[0] == "exp3"]:  # noqa: E501
            rs = [results[k] for k in results if k[0] == setting.name and k[1] == "clean" and k[2] == label]
            if not rs or "selections" not in rs[0]:
                continue
            names = [n for n, _, _ in setting.rms]
            lines += ["### %s, %s (clean): share of prompts ranked by each RM, per task family and iteration (mean over seeds)" % (setting.name, label), "",
                      "| task | iteration | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
            n_it = len(rs[0]["selections"])
            for t in tasks:
                for it in range(n_it):
                    shares = {n: [] for n in names}
                    for r in rs:
                        sel = r["selections"][it].get(t, {})
                        tot = sum(sel.values())
                        for n in names:
                            shares[n].append(sel.get(n, 0) / tot if tot else 0)
                    lines.append("| %s | %d | %s |" % (t, it + 1, " | ".join("%.0f%%" % (100 * statistics.mean(shares[n])) for n in names)))
            dom = []
            for r in sorted(rs, key=lambda r: r["seed"]):
                tot = {}
                for t, sel in r["selections"][-1].items():
                    for n, c in sel.items():
                        tot[n] = tot.get(n, 0) + c
                top = max(tot, key=tot.get) if tot else "-"
                dom.append("seed %d: %s %.0f%%" % (r["seed"], top, 100 * tot.get(top, 0) / max(1, sum(tot.values()))))
            lines += ["", "Per seed, the RM that ranked most prompts of the last iteration: " + "; ".join(dom) + "."]
            what = ("not the reward here: this bandit was rewarded with the label-based pair accuracy" if "label reward" in label
                    else "what the bandit was rewarded with; lower loss = higher reward")
            lines += ["", "Mean trainer loss on the batches each RM ranked (%s): " % what +
                      ", ".join("%s %.3f" % (n, statistics.mean([r["mean_loss_per_rm"][n] for r in rs if n in r["mean_loss_per_rm"]]))
                                for n in names if any(n in r["mean_loss_per_rm"] for r in rs)) + ".", ""]
        # finer time line from selections.jsonl (batch-level bandits): share of batches per RM in ten windows
        for label in [m[0] for m in setting.methods if m[0].startswith("linucb a=")]:
            series = selection_windows(args.out, setting, label, seeds, windows=10)
            if not series:
                continue
            names = [n for n, _, _ in setting.rms]
            lines += ["### %s, %s (clean): share of batches per RM over the run, in tenths of its batches (selections.jsonl, mean over seeds)" % (setting.name, label), "",
                      "| task | RM | " + " | ".join(str(i + 1) for i in range(10)) + " |", "|---|---|" + "---|" * 10]
            for t in tasks:
                if t not in series:
                    continue
                for n in names:
                    vals = series[t].get(n)
                    if vals and max(vals) >= 0.05:
                        lines.append("| %s | %s | %s |" % (t, n, " | ".join("%.0f%%" % (100 * v) for v in vals)))
            lines.append("")
        # agreement
        for t, am in ex.get("agreement", {}).items():
            names = am["names"]
            lines += ["### %s: RM agreement on task family `%s`" % (setting.name, t), "",
                      "Cell: share of candidate pairs ordered the same way by both (among pairs both order strictly), "
                      "and in brackets the share of all candidate pairs both order strictly. Seed %d, first iteration, train prompts; "
                      "'labels' is the truth (a right vs a wrong candidate)." % seeds[0], "",
                      "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            for a in names:
                cells = []
                for b in names:
                    v, cov = am["m"]["%s|%s" % (a, b)]
                    cells.append("-" if a == b else ("n/a (0%)" if v is None else "%.2f (%.0f%%)" % (v, 100 * cov)))
                lines.append("| %s | %s |" % (a, " | ".join(cells)))
            lines.append("")
        if ex.get("best_of_n"):
            b = ex["best_of_n"]
            lines += ["### %s: each RM as a best-of-n re-ranker on the test prompts (no policy; ties: first candidate)" % setting.name, "",
                      "| RM | all | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
            for n, v in b.items():
                lines.append("| %s | %s | %s |" % (n, "%.1f" % (100 * v["all"]) if v.get("all") is not None else "n/a",
                                                    " | ".join("%.1f" % (100 * v[t]) if v.get(t) is not None else "n/a" for t in tasks)))
            lines.append("")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    print(text)


def lr_check(args):
    """How the stand-in's learning rate was chosen, on TRAIN prompts only: 80 % of GSM8K's train
    prompts (by another hash of the text) are trained on with the true label pairs for 3 epochs of
    16-prompt batches, the other 20 % are the validation set."""
    import collections
    import hashlib
    import random
    Pair = collections.namedtuple("Pair", "prompt_id chosen rejected")
    recs = eval_data.load_gsm8k(args.gsm8k)
    train = [r for r in recs if not eval_data.is_test(r["prompt"])]
    val_of = lambda r: int(hashlib.sha256(("val/" + r["prompt"]).encode()).hexdigest()[:8], 16) % 5 == 0  # noqa: E731
    inner, val = [r for r in train if not val_of(r)], [r for r in train if val_of(r)]
    table = standin_policy.FeatureTable(inner, train, ["gsm8k"])
    print("lr check: %d inner-train prompts, %d validation prompts (all from the train split)" % (len(inner), len(val)))
    for lr in (0.03, 0.1, 0.5, 2.0):
        policy = standin_policy.StandInPolicy(table, lr=lr)
        accs = []
        for epoch in range(3):
            order = list(inner)
            random.Random(epoch).shuffle(order)
            for i in range(0, len(order), 16):
                pairs = [Pair(r["id"], a["text"], b["text"]) for r in order[i:i + 16]
                         for a in r["candidates"] for b in r["candidates"] if a["correct"] and not b["correct"]]
                policy.step(pairs)
            accs.append(policy.accuracy(val)[0])
        print("lr %-5g validation accuracy after each epoch: %s" % (lr, "  ".join("%.3f" % a for a in accs)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke check: 1 seed, 1-2 iterations, small demo, clean only")
    ap.add_argument("--datasets", default="gsm8k,demo", help="comma-separated: gsm8k, demo")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 1..N (default 5; --quick 1)")
    ap.add_argument("--conditions", default=None, help="comma-separated: clean, noise-one, noise-all (default all; --quick clean)")
    ap.add_argument("--out", default=None, help="results folder (default runs/eval, or runs/eval-quick)")
    ap.add_argument("--laser", default=os.path.join(REPO, ".build", "release", "laser"), help="the laser binary")
    ap.add_argument("--gsm8k", default=None, help="folder with example_model_solutions.jsonl (default ../shared/data/gsm8k)")
    ap.add_argument("--gsm8k-limit", type=int, default=None, help="use only the first N GSM8K problems")
    ap.add_argument("--demo-prompts", type=int, default=None, help="demo prompts per task family per iteration (default 96; --quick 32)")
    ap.add_argument("--latency-ms", type=float, default=None, help="simulated RM latency per prompt in the clean condition (default 4; --quick 0)")
    ap.add_argument("--workers", type=int, default=2, help="local laser workers, one slot each (the fixed RM capacity)")
    ap.add_argument("--lr", type=float, default=0.1, help="the stand-in's SGD learning rate")
    ap.add_argument("--rerun", action="store_true", help="run again even where a result exists")
    ap.add_argument("--report-only", action="store_true", help="only write the tables from the results in --out")
    ap.add_argument("--lr-check", action="store_true", help="only show how the learning rate was chosen (train split only)")
    ap.add_argument("--study-only", action="store_true", help="only the label-free reward study (--quick implies it)")
    args = ap.parse_args()
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for d in args.datasets:
        if d not in ("gsm8k", "demo"):
            ap.error("unknown dataset %s (gsm8k, demo)" % d)
    args.seeds = args.seeds or (1 if args.quick else 5)
    args.conditions = [c.strip() for c in (args.conditions or ("clean" if args.quick else "clean,noise-one,noise-all")).split(",")]
    args.out = os.path.abspath(args.out or os.path.join(REPO, "runs", "eval-quick" if args.quick else "eval"))
    args.demo_prompts = args.demo_prompts or (32 if args.quick else 96)
    args.latency_ms = args.latency_ms if args.latency_ms is not None else (0 if args.quick else 4)
    if args.report_only:
        report(args)
        return
    if args.lr_check:
        args.gsm8k = args.gsm8k or os.path.join(eval_data.default_shared_dir(REPO), "data", "gsm8k")
        lr_check(args)
        return
    if not os.access(args.laser, os.X_OK):
        sys.exit("laser binary not found at %s: build it with `swift build -c release` (or pass --laser PATH)" % args.laser)
    if "gsm8k" in args.datasets:
        args.gsm8k = args.gsm8k or os.path.join(eval_data.default_shared_dir(REPO), "data", "gsm8k")
        try:
            eval_data.load_gsm8k(args.gsm8k, limit=1)
        except eval_data.DataMissing as e:
            sys.exit("error: %s" % e)
    t0 = time.monotonic()
    if not (args.quick or args.study_only):
        runtime = run_all(args)
        report(args, runtime)
    # The label-free reward study (issue 16), and its headline as the last line of output.
    seeds = list(range(1, args.seeds + 1))
    results = reward_study.run_study(args)
    head, detail = reward_study.summarise(results, seeds)
    lines = reward_study.report_lines(detail, head)
    with open(os.path.join(args.out, "study.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("evaluation took %.0f s" % (time.monotonic() - t0))
    print(json.dumps(head, sort_keys=True))


if __name__ == "__main__":
    main()
