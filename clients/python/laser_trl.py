"""TRL integration for laser: train a model with TRL's DPOTrainer on laser's preference batches, one
optimiser step per batch, and report TRL's own loss on each batch as the bandit's reward.

Written against trl 1.16 and transformers 5.25 (the versions CI installs); it uses DPOTrainer's public
constructor and its `compute_loss`, `_prepare_dataset` and `data_collator`, so the loss is exactly the
one TRL computes for its `loss_type` (for the paper's DPO + NLL: loss_type=["sigmoid", "sft"]).

A DPO script changes by a few lines:

    from laser_trainer import LaserTrainer
    from laser_trl import LaserDPOTrainer
    laser = LaserTrainer("tcp://coordinator:5555", trainer_id="rank0")
    trainer = LaserDPOTrainer(laser=laser, model=model, args=DPOConfig(...), processing_class=tokenizer)  # no train_dataset
    trainer.train_on_laser()            # until the coordinator says the run is over

The first laser batch stands in for `train_dataset` (DPOTrainer checks and tokenizes it at construction),
so the constructor waits for it. For reward.source prediction-gain it also reports the loss after the
step; for probe-progress the loss on the probe set before and after each step. Rows are TRL's
conversational preference format: prompt [{"role": "user", ...}] (or the input's own message list),
chosen and rejected [{"role": "assistant", ...}], so the model's chat template applies.
"""

import json
import math

import datasets
import torch
from trl import DPOTrainer

datasets.disable_progress_bars()


def pair_row(pair):
    """A PreferencePair as a TRL conversational preference row."""
    prompt = pair.prompt
    messages = None
    if prompt.startswith("["):
        try:
            parsed = json.loads(prompt)
            if isinstance(parsed, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in parsed):
                messages = parsed
        except ValueError:
            pass
    return {
        "prompt": messages or [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }


def batch_rows(batch):
    """A PreferenceBatch's pairs as rows (what `datasets.Dataset.from_list` takes)."""
    return [pair_row(p) for p in batch.pairs]


class LaserDPOTrainer(DPOTrainer):
    """A DPOTrainer fed by laser: `train_on_laser()` takes one optimiser step per preference batch."""

    def __init__(self, *args, laser, **kwargs):
        if kwargs.get("train_dataset") is not None:
            raise ValueError("LaserDPOTrainer takes its data from laser: leave train_dataset out")
        self.laser = laser
        self._batches = laser.batches()
        self._first = next(self._batches, None)
        while self._first is not None and not self._first.pairs:
            laser.report(self._first, 0.0, **self._zero_extras())
            self._first = next(self._batches, None)
        if self._first is None:
            raise RuntimeError("the laser run ended before any batch with pairs arrived")
        kwargs["train_dataset"] = datasets.Dataset.from_list(batch_rows(self._first))
        super().__init__(*args, **kwargs)
        self.laser_steps = []  # (global_batch, reward_model, pairs, loss) per step

    def _zero_extras(self):
        extras = {}
        if self.laser.wants_loss_after:
            extras["loss_after"] = 0.0
        if self.laser.wants_probe_losses:
            extras["probe_loss_before"] = extras["probe_loss_after"] = 0.0
        return extras

    def _inputs(self, rows):
        prepared = self._prepare_dataset(datasets.Dataset.from_list(rows), self.processing_class, self.args, "laser")
        features = [{k: ex[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for ex in prepared]
        inputs = self.data_collator(features)
        return {k: v.to(self.accelerator.device) if torch.is_tensor(v) else v for k, v in inputs.items()}

    @torch.no_grad()
    def laser_loss(self, rows):
        """TRL's loss on rows without a step (eval mode)."""
        if not rows:
            return 0.0
        self.model.eval()
        return float(self.compute_loss(self.model, self._inputs(rows)).item())

    def laser_step(self, rows):
        """One optimiser step on rows; returns TRL's loss on them before the step."""
        self.model.train()
        loss = self.compute_loss(self.model, self._inputs(rows))
        self.accelerator.backward(loss)
        if self.args.max_grad_norm and self.args.max_grad_norm > 0:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.item())

    def train_on_laser(self, on_step=None, lock=None):
        """Trains until the coordinator ends the run; returns the steps taken.
        on_step(batch, loss) is called after each report (for logging). lock: held while a batch is
        trained, for a program that also uses the model between steps (on-policy sampling)."""
        import contextlib
        lock = lock or contextlib.nullcontext()
        steps = self.args.max_steps if self.args.max_steps and self.args.max_steps > 0 else 1_000_000
        self.create_optimizer_and_scheduler(num_training_steps=steps)
        self._probe_rows = None
        batch = self._first
        while batch is not None:
            with lock:
                self._train_one(batch, on_step)
            batch = next(self._batches, None)
        return self.laser_steps

    def _train_one(self, batch, on_step):
        """Trains on one batch and reports its loss (an empty batch gets 0: nothing to learn from)."""
        if batch.pairs:
            rows = batch_rows(batch)
            extras = {}
            if self.laser.wants_probe_losses:
                if self._probe_rows is None:
                    self._probe_rows = [pair_row(p) for p in (self.laser.probe or [])]
                extras["probe_loss_before"] = self.laser_loss(self._probe_rows)
            loss = self.laser_step(rows)
            if not math.isfinite(loss):
                raise RuntimeError("TRL's loss on batch %d is %r" % (batch.global_batch, loss))
            if self.laser.wants_loss_after:
                extras["loss_after"] = self.laser_loss(rows)
            if self.laser.wants_probe_losses:
                extras["probe_loss_after"] = self.laser_loss(self._probe_rows)
            self.laser.report(batch, loss, **extras)
            self.laser_steps.append((batch.global_batch, batch.reward_model, len(rows), loss))
            if on_step:
                on_step(batch, loss)
        else:
            self.laser.report(batch, 0.0, **self._zero_extras())
