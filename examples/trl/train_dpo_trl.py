#!/usr/bin/env python3
"""Train a causal LM with TRL's DPOTrainer through laser: laser picks an RM per mini-batch and builds
the preference pairs, this script takes one TRL optimiser step per batch and reports TRL's loss, which
laser turns into the bandit's reward (reward.source: trainer-loss, the paper's setting). The loss is
the paper's DPO + NLL as TRL computes it: loss_type ["sigmoid", "sft"], weights [1, 1], beta 0.1.

    laser run examples/trl/config.yaml --out runs/trl &          # the coordinator waits for a trainer
    python examples/trl/train_dpo_trl.py --run-dir runs/trl       # or --connect tcp://HOST:PORT

By default it trains a tiny Llama made on the spot (make_tiny_models.py: random weights, a tokenizer
trained on a few lines, nothing downloaded), on CPU. On a GPU with a real model, change --model (and
see docs/trainer.md "TRL on a GPU"):

    python examples/trl/train_dpo_trl.py --run-dir runs/trl --model HuggingFaceH4/mistral-7b-sft-beta --bf16

Needs: pip install "./clients/python[trl]" (trl 1.16, transformers 5.25 tested).
"""
import argparse
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for path in (os.path.join(ROOT, "clients", "python"), os.path.join(ROOT, "examples", "rm-servers")):
    if path not in sys.path:
        sys.path.insert(0, path)

import torch  # noqa: E402
import transformers  # noqa: E402
from trl import DPOConfig  # noqa: E402

from laser_trainer import LaserTrainer  # noqa: E402
from laser_trl import LaserDPOTrainer  # noqa: E402


def endpoint_of(run_dir, timeout):
    """The coordinator's endpoint from RUN_DIR/endpoint (written when it listens)."""
    path = os.path.join(run_dir, "endpoint")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            text = open(path).read().strip()
            if text:
                return text.split(";")[0].split()[0]
        time.sleep(0.1)
    sys.exit("no coordinator endpoint at %s after %.0f s" % (path, timeout))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", help="the run directory of `laser run` (reads RUN_DIR/endpoint)")
    where.add_argument("--connect", help="the coordinator's endpoint, tcp://HOST:PORT")
    parser.add_argument("--model", help="a model name or directory (default: a tiny Llama made on the spot)")
    parser.add_argument("--output-dir", default=None, help="where TRL may write (default: a temporary directory)")
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--bf16", action="store_true", help="bf16 on a GPU")
    parser.add_argument("--save", help="save the trained model here at the end")
    parser.add_argument("--give-up-after", type=float, default=120)
    args = parser.parse_args()

    model_path = args.model
    if model_path is None:
        import make_tiny_models
        model_path = os.path.join(tempfile.mkdtemp(prefix="laser-trl-"), "models")
        make_tiny_models.main(model_path)
        model_path = os.path.join(model_path, "lm")
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if args.bf16 else torch.float32)

    config = DPOConfig(
        output_dir=args.output_dir or tempfile.mkdtemp(prefix="laser-trl-out-"),
        beta=args.beta,
        loss_type=["sigmoid", "sft"],    # DPO + NLL on the chosen response, as in the paper
        loss_weights=[1.0, 1.0],
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        max_length=512,
        bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        seed=0,
    )
    endpoint = args.connect or endpoint_of(args.run_dir, args.give_up_after)
    start = time.time()
    with LaserTrainer(endpoint, trainer_id="trl-example", give_up_after=args.give_up_after) as laser:
        trainer = LaserDPOTrainer(laser=laser, model=model, args=config, processing_class=tokenizer)

        def log(batch, loss):
            print("batch %d (iteration %d, rm %s): %d pairs, TRL loss %.4f" % (batch.global_batch, batch.iteration,
                  batch.reward_model, len(batch.pairs), loss), flush=True)

        steps = trainer.train_on_laser(on_step=log)
    if args.save:
        trainer.save_model(args.save)
        tokenizer.save_pretrained(args.save)
    losses = [s[3] for s in steps]
    print("done: %d TRL steps in %.1f s, loss %.4f -> %.4f" % (len(steps), time.time() - start, losses[0], losses[-1]) if losses
          else "done: no steps", flush=True)


if __name__ == "__main__":
    main()
