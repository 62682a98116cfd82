#!/usr/bin/env python3
"""Example trainer for laser: pulls preference batches, takes a DPO step on each, reports the loss.

The policy here is a STAND-IN, not an LLM: a log-linear policy over hashed word features of the
response, restricted to each prompt's responses in the batch (log pi(y|x) = s(y) - logsumexp over the
prompt's responses). Its loss is the paper's: DPO with beta = 0.1 plus 1.0 x NLL of the chosen
response, against a frozen reference (the initial, uniform policy). Replace `StandInPolicy` with your
model (e.g. TRL's DPOTrainer on a LoRA-adapted LLM): everything else stays the same.

    python3 clients/python/train_dpo.py --connect tcp://127.0.0.1:5555

Needs pyzmq and protobuf (pip install pyzmq protobuf); laser_pb2.py and laser_trainer.py sit next to it.
"""

import argparse
import hashlib
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from laser_trainer import LaserTrainer  # noqa: E402


def features(text, dim):
    """Hashed, L2-normalised word unigrams and bigrams (md5: stable across processes)."""
    words = [w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split() if w]
    grams = words + [a + " " + b for a, b in zip(words, words[1:])]
    vec = {}
    for g in grams:
        h = int(hashlib.md5(g.encode()).hexdigest()[:8], 16)
        vec[h % dim] = vec.get(h % dim, 0.0) + (1.0 if (h >> 31) & 1 else -1.0)
    norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
    return {k: v / norm for k, v in vec.items()}


class StandInPolicy:
    """A log-linear policy (stand-in for an LLM) trained with DPO + NLL by plain SGD."""

    def __init__(self, dim=4096, beta=0.1, nll_weight=1.0, lr=0.5):
        self.dim, self.beta, self.nll_weight, self.lr = dim, beta, nll_weight, lr
        self.theta = [0.0] * dim  # the reference policy is theta = 0 (uniform over each prompt's responses)

    def score(self, phi):
        return sum(self.theta[k] * v for k, v in phi.items())

    def loss(self, pairs):
        """The mean loss on pairs, without a step (prediction-gain's loss after, probe-progress's probe)."""
        return self.step(pairs, update=False)

    def step(self, pairs, update=True):
        """One SGD step on a batch; returns the batch's mean loss before the step (what laser rewards)."""
        if not pairs:
            return 0.0
        phis, by_prompt = {}, {}
        for p in pairs:
            for text in (p.chosen, p.rejected):
                if text not in phis:
                    phis[text] = features(text, self.dim)
            by_prompt.setdefault(p.prompt_id, set()).update([p.chosen, p.rejected])
        scores = {t: self.score(phi) for t, phi in phis.items()}
        grad, total = {}, 0.0
        for p in pairs:
            sc, sr = scores[p.chosen], scores[p.rejected]
            # DPO: the reference is uniform, so its log-ratio terms cancel within a prompt.
            z = self.beta * (sc - sr)
            total += math.log1p(math.exp(-z)) if z > -30 else -z
            g = -self.beta / (1.0 + math.exp(z))  # d(-log sigmoid(z))/dz * beta
            for k, v in phis[p.chosen].items():
                grad[k] = grad.get(k, 0.0) + g * v
            for k, v in phis[p.rejected].items():
                grad[k] = grad.get(k, 0.0) - g * v
            # NLL of the chosen response under the policy restricted to the prompt's responses.
            support = sorted(by_prompt[p.prompt_id])
            m = max(scores[t] for t in support)
            log_z = m + math.log(sum(math.exp(scores[t] - m) for t in support))
            total += self.nll_weight * (log_z - sc)
            for t in support:
                w = self.nll_weight * math.exp(scores[t] - log_z)
                for k, v in phis[t].items():
                    grad[k] = grad.get(k, 0.0) + w * v
            for k, v in phis[p.chosen].items():
                grad[k] = grad.get(k, 0.0) - self.nll_weight * v
        n = len(pairs)
        if update:
            for k, v in grad.items():
                self.theta[k] -= self.lr * v / n
        return total / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connect", required=True, help="the coordinator's endpoint, e.g. tcp://127.0.0.1:5555")
    ap.add_argument("--id", default=None, help="trainer id")
    ap.add_argument("--window", type=int, default=1, help="batches held before their losses are reported")
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--nll", type=float, default=1.0, help="weight of the NLL term on the chosen response")
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--give-up-after", type=float, default=60.0)
    args = ap.parse_args()

    policy = StandInPolicy(beta=args.beta, nll_weight=args.nll, lr=args.lr)
    steps, first, last = 0, None, None
    with LaserTrainer(args.connect, trainer_id=args.id, window=args.window, give_up_after=args.give_up_after) as trainer:
        for batch in trainer.batches():
            pairs = list(batch.pairs)
            # What the run's reward needs (docs/trainer.md#reward-sources): the loss at the step, and for
            # prediction-gain the loss on the same pairs after it, for probe-progress the loss on the
            # probe's pairs before and after it.
            probe_before = policy.loss(trainer.probe) if trainer.wants_probe_losses else None
            loss = policy.step(pairs)
            if trainer.wants_probe_losses:
                trainer.report(batch, loss, probe_loss_before=probe_before, probe_loss_after=policy.loss(trainer.probe))
            elif trainer.wants_loss_after:
                trainer.report(batch, loss, loss_after=policy.loss(pairs))
            else:
                trainer.report(batch, loss)
            steps += 1
            first = loss if first is None else first
            last = loss
            print("batch %d (iteration %d, batch %d, rm %s): %d pairs, loss %.4f"
                  % (batch.global_batch, batch.iteration, batch.batch, batch.reward_model, len(batch.pairs), loss), flush=True)
        for global_batch, reason in trainer.refusals:
            print("refused: batch %d: %s" % (global_batch, reason), file=sys.stderr)
    print("done: %d steps, loss %s -> %s" % (steps, "%.4f" % first if first is not None else "-", "%.4f" % last if last is not None else "-"))


if __name__ == "__main__":
    main()
