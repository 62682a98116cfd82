"""Counterfactual probe rewards: for every mini-batch along one trajectory of the stand-in policy,
the reward EACH RM would get if the bandit picked it (one SGD step on that RM's pairs from the same
policy state, the probe's loss before and after), under the probe rules of reward.probe_consensus and
under a label probe (every right-vs-wrong pair of the probe prompts; needs labels, the reference).

A reward can only steer the bandit if, on the same batch, it ranks the RMs as the label probe does.
This prints, per probe rule and RM, the mean reward and its z (mean / sd over batches); on the demo
also per task family; "paired": each RM's reward minus the mean over all RMs on the same batch and
policy state (the RMs that give pairs on that batch), whose z shows how much of the noise is shared. The trajectory picks RMs uniformly at random (seeded), so no RM is favoured by
the path. RM scores come from the study's score-ensemble runs (every RM scores every batch there, see
their journals); the noise condition adds N(0, 0.3) to the best RM's scores, as the study's `noisy` RM
does (seeded here, not the same draws).

    python3 bench/eval/counterfactual_rewards.py --study runs/eval-study --dataset gsm8k --seeds 1,2 [--noise]
"""

import argparse
import copy
import json
import os
import random
import statistics
import struct
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_eval  # noqa: E402
import standin_policy  # noqa: E402

NOISY = {"gsm8k": "self-consistency", "demo": "instruction-following"}


class Pair:
    def __init__(self, pid, chosen, rejected):
        self.prompt_id, self.chosen, self.rejected = pid, chosen, rejected


def journal(path):
    """The journal's records: frames of u32 length, u32 CRC, JSON (docs/architecture.md)."""
    data, i, out = open(path, "rb").read(), 0, []
    while i + 8 <= len(data):
        n = struct.unpack("<I", data[i:i + 4])[0]
        out.append(json.loads(data[i + 8:i + 8 + n]))
        i += 8 + n
    return out


def best_vs_rest(scores, max_pairs=10):
    """laser's pair policy best-vs-rest (PairBuilder.swift): score order, nested walk, ties skipped."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    out = []
    for a in range(len(order)):
        for b in range(a + 1, len(order)):
            if scores[order[a]] - scores[order[b]] > 0:
                out.append((order[a], order[b]))
                if len(out) == max_pairs:
                    return out
    return out


def unanimous(per_rm):
    n, out = len(per_rm[0]), []
    for i in range(n):
        for j in range(i + 1, n):
            ops = [s[i] > s[j] for s in per_rm if s[i] != s[j]]
            if len(ops) >= 2 and all(ops):
                out.append((i, j))
            elif len(ops) >= 2 and not any(ops):
                out.append((j, i))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", default="runs/eval-study", help="the study's --out folder (with its ensemble runs)")
    ap.add_argument("--dataset", default="gsm8k", choices=["gsm8k", "demo"])
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--noise", action="store_true", help="N(0, 0.3) on the best RM's scores")
    ap.add_argument("--probe-size", type=int, default=64)
    args = ap.parse_args()
    study = os.path.abspath(args.study)
    ns = types.SimpleNamespace(gsm8k=None, gsm8k_limit=None, laser=os.path.join(run_eval.REPO, ".build", "release", "laser"),
                               demo_prompts=96, quick=False, datasets=[args.dataset], conditions=["clean"], out=study, lr=0.1)
    if args.dataset == "gsm8k":
        ns.gsm8k = os.path.join(run_eval.eval_data.default_shared_dir(run_eval.REPO), "data", "gsm8k")
    setting = [s for s in run_eval.settings(ns) if s.name == args.dataset][0]
    rms = [n for n, _, _ in setting.rms]
    agg = {}
    for seed in [int(x) for x in args.seeds.split(",")]:
        data = run_eval.load_data(ns, setting, seed, os.path.join(study, "work"))
        recs = journal(os.path.join(study, "study", args.dataset, "clean", "ensemble.given.seed%d" % seed, "laser", "journal"))
        counts = [r["iterationLoaded"]["prompts"] for r in recs if "iterationLoaded" in r]
        starts, acc = [], 0
        for c in counts:
            starts.append(acc)
            acc += (c + setting.batch_size - 1) // setting.batch_size
        S = {}
        for r in recs:
            s = r.get("scored")
            if s and s["batch"] >= 0:
                it = max(i for i in range(len(starts)) if starts[i] <= s["batch"])
                for k, sc in enumerate(s["scores"]):
                    S.setdefault((it, s["firstPrompt"] + k), {})[s["rm"]] = sc
        rng = random.Random(1000 + seed)
        if args.noise:
            for key in sorted(S):
                S[key][NOISY[args.dataset]] = [v + rng.gauss(0, 0.3) for v in S[key][NOISY[args.dataset]]]

        def pairs(it, i, rule):
            r = data.iterations[it][i]
            t = [c["text"] for c in r["candidates"]]
            return [Pair(r["id"], t[c], t[j]) for c, j in rule]

        probe_idx = range(args.probe_size)
        per = {i: [S[(0, i)][rm] for rm in rms] for i in probe_idx}
        own = {rm: [p for i in probe_idx for p in pairs(0, i, best_vs_rest(per[i][k]))] for k, rm in enumerate(rms)}
        m = min(len(v) for v in own.values() if len(v) >= 8)
        brng = random.Random(seed)
        probes = {
            "unanimous": [p for i in probe_idx for p in pairs(0, i, unanimous(per[i]))],
            "balanced": [p for rm in rms if len(own[rm]) >= 8 for p in brng.sample(own[rm], m)],
            "label (reference)": [p for i in probe_idx for p in pairs(0, i, [
                (a, b) for a, ca in enumerate(data.iterations[0][i]["candidates"])
                for b, cb in enumerate(data.iterations[0][i]["candidates"]) if ca["correct"] and not cb["correct"]])],
        }
        policy = standin_policy.StandInPolicy(data.table, beta=0.1, nll_weight=1.0, lr=ns.lr)
        path = random.Random(seed)
        for it in range(len(data.iterations)):
            n = len(data.iterations[it])
            for b0 in range(args.probe_size if it == 0 else 0, n, setting.batch_size):
                idxs = range(b0, min(n, b0 + setting.batch_size))
                family = data.iterations[it][b0]["task"] if args.dataset == "demo" else None
                before = {k: policy.loss(v) for k, v in probes.items()}
                batch = {rm: [p for i in idxs for p in pairs(it, i, best_vs_rest(S[(it, i)][rm]))] for rm in rms}
                values = {}
                for rm in rms:
                    if not batch[rm]:
                        continue
                    q = copy.copy(policy)
                    q.theta = list(policy.theta)
                    q.step(batch[rm])
                    for k, v in probes.items():
                        value = before[k] - q.loss(v)
                        values.setdefault(k, {})[rm] = value
                        agg.setdefault((k, None), {}).setdefault(rm, []).append(value)
                        if family:
                            agg.setdefault((k, family), {}).setdefault(rm, []).append(value)
                # Paired: each RM's reward minus the mean over the RMs on the same batch and state.
                for k, d in values.items():
                    if len(d) >= 2:
                        mean = sum(d.values()) / len(d)
                        for rm, value in d.items():
                            agg.setdefault((k + ", paired", None), {}).setdefault(rm, []).append(value - mean)
                arm = path.choice(rms)
                if batch[arm]:
                    policy.step(batch[arm])
    print("%s, %s, seeds %s: mean reward x 1000 (z = mean / sd over batches)" % (args.dataset, "noise on " + NOISY[args.dataset] if args.noise else "clean", args.seeds))
    for (rule, family), d in sorted(agg.items(), key=lambda kv: (kv[0][1] or "", kv[0][0])):
        cells = ["%s %+.2f (z %+.2f)" % (rm, 1000 * statistics.mean(v), statistics.mean(v) / statistics.pstdev(v) if statistics.pstdev(v) else 0)
                 for rm, v in sorted(d.items())]
        print("%-18s %-13s %s" % (rule, family or "all", " | ".join(cells)))


if __name__ == "__main__":
    main()
