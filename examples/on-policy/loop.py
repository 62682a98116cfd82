#!/usr/bin/env python3
"""The paper's on-policy loop with laser: sample candidates from the current policy, let laser pick an
RM per mini-batch and build preference pairs, train the policy on them with TRL (its loss is the
bandit's reward), then sample the next iteration's candidates from the trained policy.

    python examples/on-policy/loop.py --iterations 3 --work runs/on-policy

One process does the policy's two jobs, one `laser run` does the rest:
- laser runs with `input: {dir: WORK/data, pattern: "iteration-{n}.jsonl", iterations: N}` and waits for
  each iteration's file and its `.done` marker (docs/on-policy.md);
- a thread trains with laser_trl.LaserDPOTrainer (TRL's DPO + NLL, reward.source trainer-loss);
- the main thread writes iteration n's file from the policy as it is after iteration n-1's batches:
  it waits until RUN_DIR/status.json says the run waits for iteration n and no loss is outstanding.

The policy is a tiny Llama made on the spot (make_tiny_models.py; nothing downloaded), so the samples
are gibberish; with a real SFT model (--model) the loop is the same. The RMs are laser's built-in ones.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for path in (os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "examples", "rm-servers")):
    sys.path.insert(0, path)

import torch  # noqa: E402
import transformers  # noqa: E402
from trl import DPOConfig  # noqa: E402

from laser_trainer import LaserTrainer  # noqa: E402
from laser_trl import LaserDPOTrainer  # noqa: E402

PROMPTS = [
    ("What is two plus two?", "4"),
    ("Maria saves 8 dollars each week for 11 weeks. How much does she save?", "88"),
    ("Name a colour of the sea.", None),
    ("What is 6 times 7?", "42"),
    ("Write one word about the sea.", None),
    ("What is 12 minus 5?", "7"),
]

CONFIG = """# written by examples/on-policy/loop.py
input: {{dir: data, pattern: "iteration-{{n}}.jsonl", iterations: {iterations}, wait_timeout_s: 600}}
seed: 3
strategy: linucb
linucb: {{alpha: 2.0}}
batch_size: {batch_size}
shard_size: 2
pairs: {{mode: best-vs-worst, max_pairs: 8, margin: 0}}
reward: {{source: trainer-loss}}
bandit: {{warm_start: round-robin, ties: seeded, first_reward: neutral}}
reward_models:
  - {{name: length, kind: length, params: {{prefer: shorter}}}}
  - {{name: self-consistency, kind: self-consistency}}
  - {{name: answer-match, kind: answer-match}}
network: {{bind: "tcp://127.0.0.1:*"}}
workers: {{local: 2, slots: 2}}
"""


def fingerprint(model):
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def sample(model, tokenizer, prompt, n, seed, max_new_tokens):
    """n responses to prompt from the policy (chat template, temperature 1)."""
    model.eval()
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    torch.manual_seed(seed)
    out = model.generate(torch.tensor([list(ids)] * n), attention_mask=torch.ones(n, len(ids), dtype=torch.long),
                         do_sample=True, temperature=1.0, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
    texts = [tokenizer.decode(row[len(ids):], skip_special_tokens=True).strip() for row in out]
    return [t if t else "(empty)" for t in texts]


def write_iteration(path, model, tokenizer, n, candidates, max_new_tokens):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for i, (prompt, reference) in enumerate(PROMPTS):
            texts = sample(model, tokenizer, prompt, candidates, seed=1000 * n + i, max_new_tokens=max_new_tokens)
            row = {"id": "it%d-p%d" % (n, i), "prompt": prompt, "candidates": [{"text": t} for t in texts]}
            if reference:
                row["reference"] = reference
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
    open(path + ".done", "w").close()  # the marker: the file is complete


def status(run_dir):
    try:
        with open(os.path.join(run_dir, "status.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def wait_for_turn(run_dir, n, laser_proc, timeout=600):
    """Until laser waits for iteration n and every earlier batch is trained."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if laser_proc.poll() is not None:
            raise SystemExit("laser run exited (%d) before iteration %d" % (laser_proc.returncode, n))
        s = status(run_dir)
        if (s.get("waiting_for_input") or "").startswith("iteration %d input" % n) and s.get("batches_awaiting_loss") == 0 \
                and s.get("batches_emitted_in_iteration") == s.get("batches_in_iteration"):
            return
        time.sleep(0.1)
    raise SystemExit("laser did not get to iteration %d within %d s" % (n, timeout))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--model", help="the initial policy (default: a tiny Llama made on the spot)")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--laser", default=os.environ.get("LASER_BIN", os.path.join(ROOT, ".build", "debug", "laser")))
    args = parser.parse_args()
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="laser-on-policy-"))
    os.makedirs(os.path.join(work, "data"), exist_ok=True)
    model_path = args.model
    if model_path is None:
        import make_tiny_models
        make_tiny_models.main(os.path.join(work, "models"))
        model_path = os.path.join(work, "models", "lm")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)

    with open(os.path.join(work, "config.yaml"), "w") as f:
        f.write(CONFIG.format(iterations=args.iterations, batch_size=3))
    run_dir = os.path.join(work, "run")
    start = time.time()
    # Iteration 1 from the initial policy; laser starts with it.
    fingerprints = [fingerprint(model)]
    write_iteration(os.path.join(work, "data", "iteration-1.jsonl"), model, tokenizer, 1, args.candidates, args.max_new_tokens)
    print("iteration 1: sampled from the initial policy (weights %s)" % fingerprints[0], flush=True)
    laser_proc = subprocess.Popen([args.laser, "run", os.path.join(work, "config.yaml"), "--out", run_dir, "--no-progress"],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "laser.log"), "w"))
    while not os.path.exists(os.path.join(run_dir, "endpoint")):
        if laser_proc.poll() is not None:
            raise SystemExit("laser run failed: see %s" % os.path.join(work, "laser.log"))
        time.sleep(0.05)
    endpoint = open(os.path.join(run_dir, "endpoint")).read().split()[0]

    lock = threading.Lock()
    config = DPOConfig(output_dir=os.path.join(work, "trl"), beta=0.1, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0],
                       learning_rate=1e-3, lr_scheduler_type="constant", max_length=256, use_cpu=True, report_to="none", seed=0)
    laser = LaserTrainer(endpoint, trainer_id="on-policy", give_up_after=120)
    trainer = LaserDPOTrainer(laser=laser, model=model, args=config, processing_class=tokenizer)
    failure = []

    def train():
        try:
            trainer.train_on_laser(lock=lock, on_step=lambda b, loss: print(
                "  trained on batch %d (iteration %d, rm %s, %d pairs): TRL loss %.4f" % (b.global_batch, b.iteration, b.reward_model,
                                                                                        len(b.pairs), loss), flush=True))
        except Exception as error:  # reported by the main thread
            failure.append(error)

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    for n in range(2, args.iterations + 1):
        wait_for_turn(run_dir, n, laser_proc)
        with lock:
            fingerprints.append(fingerprint(model))
            write_iteration(os.path.join(work, "data", "iteration-%d.jsonl" % n), model, tokenizer, n, args.candidates, args.max_new_tokens)
        print("iteration %d: sampled from the policy after iteration %d's steps (weights %s)" % (n, n - 1, fingerprints[-1]), flush=True)
    thread.join(timeout=600)
    laser.close()
    code = laser_proc.wait(timeout=120)
    if failure:
        raise failure[0]
    if code != 0:
        raise SystemExit("laser run exited %d: see %s" % (code, os.path.join(work, "laser.log")))
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    print("done: %d iterations, %d TRL steps, %.1f s; policy weights per iteration: %s; run: %s" % (
        len(summary["iterations"]), len(trainer.laser_steps), time.time() - start, " -> ".join(fingerprints), run_dir), flush=True)


if __name__ == "__main__":
    main()
