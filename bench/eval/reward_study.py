"""The label-free reward study of docs/evaluation.md (issue 16): which reward lets LinUCB pick the
right RM without labels, whatever the order of the arms.

Every row is a real `laser run` with this evaluation's stand-in trainer (run_eval.run_one), on the
same data and splits as the main evaluation. Each learning row runs in 3 arm orders (the given one,
its reverse, and one seeded shuffle) for every seed; fixed-RM rows do not depend on the order and run
once per seed. The headline (one JSON line) compares laser's recommended label-free configuration
with the best single RM (chosen on the train split), random, and the paper's preset.
"""

import json
import os
import random
import statistics
import time

import run_eval

# The bandit options that make a label-free run start fair: every arm tried once in a seeded order,
# ties broken by a seeded permutation, the first reward counted as neutral (0.5).
FAIR_START = {"warm_start": "round-robin", "ties": "seeded", "first_reward": "neutral"}

# laser's recommended label-free configuration, fixed before the study ran (from the offline
# replica: consensus-probe progress was the only label-free reward within a point of the label reward).
RECOMMENDED_LABEL = "probe-progress a=2, fair start"
RECOMMENDED = dict({"strategy": "linucb", "alpha": 2.0, "reward": "probe-progress", "probe_size": 64}, **FAIR_START)
# The probe weighted by label-free RM competences (reward.probe_consensus: weighted), aimed at the noise
# failure of the unanimous probe.
WEIGHTED_LABEL = "probe-progress a=2, fair start, weighted probe"
# The balanced probe (reward.probe_consensus: balanced): every RM's own pairs, the same number from
# each, no vote; aimed at the same failure (a consensus probe is what the densest RMs say).
BALANCED_LABEL = "probe-progress a=2, fair start, balanced probe"


def study_methods(quick):
    rows = [
        ("paper preset", {"preset": "paper", "strategy": "linucb", "alpha": 0.1, "reward": "trainer-loss"}),
        (RECOMMENDED_LABEL, RECOMMENDED),
        ("random", {"strategy": "random"}),
    ]
    if not quick:
        rows += [
            ("prediction-gain a=2, fair start", dict({"strategy": "linucb", "alpha": 2.0, "reward": "prediction-gain"}, **FAIR_START)),
            ("loss a=2, fair start", dict({"strategy": "linucb", "alpha": 2.0, "reward": "trainer-loss"}, **FAIR_START)),
            ("probe-progress a=0.5, fair start", dict(RECOMMENDED, alpha=0.5)),
            ("ensemble", {"strategy": "ensemble"}),
            # Variants of the recommended one (chosen among by the train split's pair accuracy only).
            ("probe-progress a=4, fair start", dict(RECOMMENDED, alpha=4.0)),
            ("probe-progress a=2, fair start, probe 256", dict(RECOMMENDED, probe_size=256)),
            ("probe-progress a=2, fair start, DPO probe loss", dict(RECOMMENDED, probe_loss="dpo")),
            (WEIGHTED_LABEL, dict(RECOMMENDED, probe_consensus="weighted")),
            (BALANCED_LABEL, dict(RECOMMENDED, probe_consensus="balanced")),
            (BALANCED_LABEL + ", a=4", dict(RECOMMENDED, probe_consensus="balanced", alpha=4.0)),
            (BALANCED_LABEL + ", probe 256", dict(RECOMMENDED, probe_consensus="balanced", probe_size=256)),
            # A short context (16 numbers, the bias one of them): LinUCB learns each arm's mean from a
            # few dozen batches instead of spreading them over 256 hashed words.
            ("probe-progress a=2, fair start, context 16", dict(RECOMMENDED, context_dim=16)),
            (BALANCED_LABEL + ", context 16", dict(RECOMMENDED, probe_consensus="balanced", context_dim=16)),
            ("thompson probe-progress, fair start", dict(RECOMMENDED, strategy="thompson", v=0.5)),
            ("thompson probe-progress, calibrated priors", dict(RECOMMENDED, strategy="thompson", v=0.5, priors="CALIBRATED")),
            ("thompson loss, calibrated priors", dict({"strategy": "thompson", "v": 0.5, "reward": "trainer-loss", "priors": "CALIBRATED"}, **FAIR_START)),
        ]
    return rows


def calibrated_priors(args, setting, data, rms, seed):
    """`laser calibrate` on 50 labelled TRAIN prompts (the first of iteration 1; the study's other runs
    use no labels), for this arm order's config; returns the priors file."""
    import subprocess
    folder = os.path.join(args.out, "study", "calibration", "%s-seed%d-%s" % (setting.name, seed, "-".join(n[:4] for n, _, _ in rms)))
    out = os.path.join(folder, "priors.yaml")
    if os.path.exists(out):
        return out
    os.makedirs(folder, exist_ok=True)
    labelled = run_eval.eval_data.write_inputs([data.iterations[0][:50]], os.path.join(folder, "input"))[0]
    cfg = os.path.join(folder, "config.yaml")
    s = run_eval.Setting(setting.name, rms, setting.batch_size, 1, setting.context_dim, [], ["clean"])
    run_eval.write_config(cfg, [labelled], s, {"strategy": "linucb"}, seed, "clean", None, 0, 1)
    subprocess.run([args.laser, "calibrate", cfg, "--input", labelled, "--out", out], check=True, stdout=subprocess.DEVNULL)
    return out


def orders(rms):
    """The three arm orders: as given, reversed, and a shuffle seeded with 7."""
    shuffled = list(rms)
    random.Random(7).shuffle(shuffled)
    return [("given", list(rms)), ("reversed", list(reversed(rms))), ("shuffled", shuffled)]


def path(out, dataset, condition, label, order, seed):
    safe = label.replace(" ", "_").replace(":", "-").replace("=", "").replace(",", "")
    return os.path.join(out, "study", dataset, condition, "%s.%s.seed%d.json" % (safe, order, seed))


def run_study(args):
    """Runs (or reuses) every study run; returns {(dataset, condition, label, order, seed): result}."""
    results = {}
    seeds = list(range(1, args.seeds + 1))
    t0 = time.monotonic()
    for setting in run_eval.settings(args):
        if setting.name not in ("gsm8k", "demo"):
            continue
        rows = study_methods(args.quick)
        fixed = [("fixed:" + n, {"strategy": "fixed", "fixed_rm": n}) for n, _, _ in setting.rms]
        best = None
        for condition in (["clean"] if args.quick else ["clean", "noise-one"]):
            for seed in seeds:
                data = run_eval.load_data(args, setting, seed, os.path.join(args.out, "work"))
                # Every row in both conditions (fixed RMs in the given order only: order changes nothing).
                jobs = [(label, m, "given", setting.rms) for label, m in fixed]
                for order, rms in orders(setting.rms):
                    jobs += [(label, m, order, rms) for label, m in rows]
                if condition == "noise-one" and best is None:
                    best = best_single(results, setting.name, seeds)
                for label, m, order, rms in jobs:
                    p = path(args.out, setting.name, condition, label, order, seed)
                    key = (setting.name, condition, label, order, seed)
                    if os.path.exists(p) and not args.rerun:
                        with open(p) as f:
                            results[key] = json.load(f)
                        continue
                    s = run_eval.Setting(setting.name, rms, setting.batch_size, setting.iterations, setting.context_dim, [], [condition])
                    if m.get("priors") == "CALIBRATED":
                        m = dict(m, priors=calibrated_priors(args, setting, data, rms, seed))
                    t = time.monotonic()
                    r = run_eval.run_one(args, s, data, label, m, seed, condition, best, p[:-5])
                    r["order"] = order
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    with open(p, "w") as f:
                        json.dump(r, f)
                    results[key] = r
                    print("study %-6s %-9s seed %d %-9s %-34s held-out %.3f  %.1f s (total %.0f s)" % (
                        setting.name, condition, seed, order, label, r["heldout"], time.monotonic() - t, time.monotonic() - t0), flush=True)
    return results


def best_single(results, dataset, seeds):
    """The best single RM, chosen on the TRAIN split only (as in the main evaluation): the fixed RM
    whose pairs are most often label-right minus label-wrong, summed over seeds."""
    score = {}
    for (d, c, label, _, seed), r in results.items():
        if d == dataset and c == "clean" and label.startswith("fixed:") and seed in seeds:
            score[label[6:]] = score.get(label[6:], 0) + sum(r["net_correct_pairs_per_task"].values())
    return max(score, key=score.get) if score else None


def _mean(values):
    return statistics.mean(values) if values else None


def summarise(results, seeds):
    """The headline numbers (percent), with per-order means and spreads."""
    head, detail = {}, {}
    for dataset in ("gsm8k", "demo"):
        best = best_single(results, dataset, seeds)
        if best is None:
            continue
        def acc(label, condition="clean", order=None):
            return [100 * r["heldout"] for (d, c, l, o, s), r in results.items()
                    if d == dataset and c == condition and l == label and (order is None or o == order)]
        rows = sorted({l for (d, c, l, _, _) in results if d == dataset})
        table = {}
        for label in rows:
            per_order = {o: _mean(acc(label, order=o)) for o in ("given", "reversed", "shuffled") if acc(label, order=o)}
            vals = acc(label)
            train_pairs = [r["pair_accuracy"] for (d, c, l, o, s), r in results.items()
                           if d == dataset and c == "clean" and l == label and r.get("pair_accuracy") is not None]
            table[label] = {"mean": _mean(vals), "train_pair_accuracy": _mean(train_pairs), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals),
                            "per_order": per_order,
                            "order_spread": (max(per_order.values()) - min(per_order.values())) if len(per_order) > 1 else 0.0,
                            "noise_one": _mean(acc(label, "noise-one"))}
        detail[dataset] = {"best_single_rm": best, "rows": table}
        head[dataset + "_best_single"] = table["fixed:" + best]["mean"]
        head[dataset + "_recommended"] = table.get(RECOMMENDED_LABEL, {}).get("mean")
        head[dataset + "_recommended_order_spread"] = table.get(RECOMMENDED_LABEL, {}).get("order_spread")
        if dataset == "gsm8k":
            head["gsm8k_random"] = table.get("random", {}).get("mean")
            head["paper_preset_gsm8k"] = table.get("paper preset", {}).get("mean")
        rec = table.get(RECOMMENDED_LABEL, {})
        if rec.get("noise_one") is not None:
            head[dataset + "_recommended_noise_loss"] = rec["mean"] - rec["noise_one"]
    head["recommended_config"] = {"strategy": "linucb", "linucb": {"alpha": RECOMMENDED["alpha"]},
                                  "reward": {"source": RECOMMENDED["reward"], "probe_size": RECOMMENDED["probe_size"]},
                                  "bandit": FAIR_START}
    return head, detail


def report_lines(detail, head):
    lines = ["## Label-free reward study", "",
             "Held-out accuracy (%) of the stand-in, mean ± sd over seeds and arm orders; per order: mean over seeds.", ""]
    for dataset, d in detail.items():
        lines += ["### %s (best single RM on the train split: %s)" % (dataset, d["best_single_rm"]), "",
                  "| method | held-out % | given | reversed | shuffled | order spread | noise-one | noise loss | pair acc (train) |", "|---|---|---|---|---|---|---|---|---|"]
        for label, r in sorted(d["rows"].items(), key=lambda kv: -(kv[1]["mean"] or 0)):
            po = r["per_order"]
            cell = lambda o: "%.1f" % po[o] if o in po else "-"  # noqa: E731
            lines.append("| %s | %.1f ± %.1f (n=%d) | %s | %s | %s | %.1f | %s | %s | %s |" % (
                label, r["mean"], r["sd"], r["n"], cell("given"), cell("reversed"), cell("shuffled"), r["order_spread"],
                "%.1f" % r["noise_one"] if r["noise_one"] is not None else "-",
                "%.1f" % (r["mean"] - r["noise_one"]) if r["noise_one"] is not None else "-",
                "%.3f" % r["train_pair_accuracy"] if r["train_pair_accuracy"] is not None else "-"))
        lines.append("")
    lines += ["Headline: `%s`" % json.dumps(head, sort_keys=True), ""]
    return lines
