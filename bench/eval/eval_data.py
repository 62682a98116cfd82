"""Datasets for the evaluation: GSM8K (real, from ../shared) and laser's built-in demo data.

Both become laser's input format, one JSONL line per prompt:
    {"id", "prompt", "candidates": [{"text", "correct"}], "reference", "task"}
and are split into train (what laser and the trainer see) and test (held out, only for measuring the
stand-in policy) by a fixed rule: sha256 of the prompt TEXT; the first 8 hex digits as an integer,
modulo 10; 0, 1 and 2 are test (30 %), the rest train. The rule does not depend on the seed, the
method or the order of the data, so every method of every seed is tested on the same prompts. It is
keyed on the text, not on the id, so a prompt that occurs twice (the demo re-samples prompts per
iteration) can never be on both sides.

Nothing here copies GSM8K into the repository: the files are read from the shared folder and the
converted input is written into the run folder (runs/ is git-ignored).
"""

import hashlib
import json
import os
import random
import re
import subprocess

TEST_BUCKETS = (0, 1, 2)  # of 10: 30 % test


def is_test(prompt_text):
    return int(hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()[:8], 16) % 10 in TEST_BUCKETS


def _stable_rng(*parts):
    return random.Random(int(hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()[:16], 16))


# -- GSM8K ---------------------------------------------------------------------------------------

GSM8K_FILE = "example_model_solutions.jsonl"
GSM8K_SOLVERS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


class DataMissing(Exception):
    pass


def default_shared_dir(repo_root):
    """../shared next to the main checkout: for a git worktree, next to the main repository's
    working tree (found through git's common dir), else next to this repository."""
    candidates = [os.path.join(os.path.dirname(os.path.abspath(repo_root)), "shared")]
    try:
        common = subprocess.run(["git", "-C", repo_root, "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        if common:
            main_root = os.path.dirname(common.rstrip("/"))
            candidates.insert(0, os.path.join(os.path.dirname(main_root), "shared"))
    except (OSError, subprocess.SubprocessError):
        pass
    for c in candidates:
        if os.path.isdir(c):
            return c
    return candidates[-1]


def gsm8k_final_answer(text):
    m = re.search(r"(?:####|A:)\s*([^\n]*)\s*$", text.strip())
    return m.group(1).strip() if m else None


def load_gsm8k(directory, limit=None):
    """The GSM8K test problems with four model-sampled solutions each (OpenAI's grade-school-math
    example_model_solutions.jsonl). Returns prompt records; candidates are shuffled per prompt by a
    hash of the prompt id (fixed), so a candidate's position says nothing about which model wrote it."""
    path = os.path.join(directory, GSM8K_FILE)
    if not os.path.isfile(path):
        raise DataMissing(
            "GSM8K data not found: %s does not exist.\n"
            "The evaluation reads GSM8K from the shared data folder (../shared/data/gsm8k next to the main "
            "checkout). Pass --gsm8k DIR with the folder holding %s, or run only the demo with --datasets demo."
            % (path, GSM8K_FILE))
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            pid = "gsm8k-%04d" % n
            cands = [{"text": row[k]["solution"], "correct": bool(row[k]["is_correct"])} for k in GSM8K_SOLVERS]
            _stable_rng("gsm8k-order", pid).shuffle(cands)
            ref = gsm8k_final_answer(row["ground_truth"])
            records.append({"id": pid, "prompt": row["question"], "candidates": cands,
                            "reference": ref, "task": "gsm8k"})
            if limit and len(records) >= limit:
                break
    return records


def gsm8k_iterations(records, iterations, seed):
    """Train prompts, one list per iteration: the same prompts (the candidates are fixed: there is
    no policy to re-sample from) in an order shuffled per (seed, iteration)."""
    train = [r for r in records if not is_test(r["prompt"])]
    out = []
    for it in range(1, iterations + 1):
        order = list(train)
        _stable_rng("gsm8k-iteration", seed, it).shuffle(order)
        out.append(order)
    return out


# -- the built-in demo ---------------------------------------------------------------------------

def demo_iterations(laser, workdir, iterations, prompts_per_task, seed, batch_size):
    """Generates the demo with `laser demo-data` (seeded by the evaluation seed), removes the test
    prompts and re-forms single-family runs of `batch_size` prompts (the demo's layout, so that a
    mini-batch is one task family), shuffled per (seed, iteration). Returns (iterations, test)."""
    out = os.path.join(workdir, "demo-data-seed%d" % seed)
    if not os.path.isfile(os.path.join(out, "input", "iteration-%d.jsonl" % iterations)):
        subprocess.run([laser, "demo-data", "--out", out, "--iterations", str(iterations),
                        "--prompts-per-task", str(prompts_per_task), "--seed", str(seed)],
                       check=True, stdout=subprocess.DEVNULL)
    train_its, test, seen_test = [], [], set()
    for it in range(1, iterations + 1):
        with open(os.path.join(out, "input", "iteration-%d.jsonl" % it), encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        by_task, runs, short = {}, [], []
        for r in rows:
            if is_test(r["prompt"]):
                if r["prompt"] not in seen_test:
                    seen_test.add(r["prompt"])
                    test.append(r)
                continue
            by_task.setdefault(r["task"], []).append(r)
        for task in sorted(by_task):
            ps = by_task[task]
            for i in range(0, len(ps), batch_size):
                (runs if len(ps[i:i + batch_size]) == batch_size else short).append(ps[i:i + batch_size])
        _stable_rng("demo-runs", seed, it).shuffle(runs)
        train_its.append([r for run in runs + short for r in run])
    return train_its, test


def write_inputs(iteration_lists, directory):
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, rows in enumerate(iteration_lists, 1):
        path = os.path.join(directory, "iteration-%d.jsonl" % i)
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                line = {"id": r["id"], "prompt": r["prompt"], "candidates": r["candidates"], "task": r["task"]}
                if r.get("reference") is not None:
                    line["reference"] = r["reference"]
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        paths.append(os.path.abspath(path))
    return paths
