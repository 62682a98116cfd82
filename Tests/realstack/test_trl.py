"""TRL through laser: examples/trl/train_dpo_trl.py trains a real (tiny, made on the spot) causal LM
with TRL's DPOTrainer on laser's batches, and TRL's loss is the bandit's reward (trainer-loss)."""
import glob
import json
import os
import re
import subprocess
import sys
import time

import datasets
import torch
import transformers
from trl import DPOConfig, DPOTrainer

from conftest import LASER, ROOT, batch_lines

sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
sys.path.insert(0, os.path.join(ROOT, "examples", "rm-servers"))


def config_for(tmp_path):
    text = open(os.path.join(ROOT, "examples", "trl", "config.yaml")).read()
    text = text.replace("../data/", os.path.join(ROOT, "examples", "data") + "/")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_trl_trains_through_laser_and_its_loss_is_the_reward(tmp_path):
    run = tmp_path / "run"
    coordinator = subprocess.Popen([LASER, "run", str(config_for(tmp_path)), "--out", str(run)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.time()
    trainer = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "trl", "train_dpo_trl.py"), "--run-dir", str(run),
                              "--save", str(tmp_path / "trained"), "--give-up-after", "60"],
                             capture_output=True, text=True, timeout=600)
    wall = time.time() - start
    out, err = coordinator.communicate(timeout=120)
    assert trainer.returncode == 0, trainer.stderr[-3000:]
    assert coordinator.returncode == 0, err[-3000:]
    print("TRL example wall time: %.1f s" % wall)
    steps = [(int(m.group(1)), float(m.group(2))) for m in re.finditer(r"batch (\d+) \(.*TRL loss ([0-9.]+)", trainer.stdout)]
    summary = json.load(open(run / "summary.json"))
    assert summary["counters"]["losses_accepted"] == len(steps) > 0
    # Every reported loss is the bandit's raw reward (-loss) for that batch.
    selections = [json.loads(l) for l in open(run / "selections.jsonl")]
    by_batch = {s["global_batch"]: s for s in selections if "loss" in s}
    for global_batch, loss in steps:
        assert abs(by_batch[global_batch]["loss"] - loss) < 1e-3 and by_batch[global_batch]["raw_reward"] == -by_batch[global_batch]["loss"]

    # The first loss is TRL's own: a fresh DPOTrainer with the same model and settings, on the first batch's
    # pairs read from the batch file, computes the same number.
    first = min(by_batch)
    pairs = [l for l in batch_lines(run) if l["iteration"] == by_batch[first]["iteration"] and l["batch"] == by_batch[first]["batch"]]
    import make_tiny_models
    make_tiny_models.main(str(tmp_path / "fresh"))
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "fresh" / "lm")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "fresh" / "lm", dtype=torch.float32)
    rows = [{"prompt": [{"role": "user", "content": p["prompt"]}], "chosen": [{"role": "assistant", "content": p["chosen"]}],
             "rejected": [{"role": "assistant", "content": p["rejected"]}]} for p in pairs]
    args = DPOConfig(output_dir=str(tmp_path / "o"), beta=0.1, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0],
                     max_length=512, use_cpu=True, report_to="none", per_device_train_batch_size=len(rows), seed=0)
    fresh = DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows), processing_class=tok)
    batch = next(iter(fresh.get_train_dataloader()))
    with torch.no_grad():
        model.train()
        loss = fresh.compute_loss(model, batch).item()
    assert abs(loss - steps[0][1]) < 1e-3, "TRL computes %f on the first batch, the example reported %f" % (loss, steps[0][1])
    assert os.path.exists(tmp_path / "trained" / "config.json")


def test_batch_files_load_into_trls_dpo_trainer_without_renaming(tmp_path):
    """laser's batch files, as they are (provenance columns included), train a DPOTrainer for a step."""
    run = tmp_path / "run"
    subprocess.run([LASER, "run", os.path.join(ROOT, "examples", "config.yaml"), "--out", str(run)], check=True, capture_output=True)
    files = sorted(glob.glob(str(run / "iterations" / "*" / "batch-*.jsonl")))
    files = [f for f in files if os.path.getsize(f) > 0]
    dataset = datasets.load_dataset("json", data_files=files, split="train")
    assert {"prompt", "chosen", "rejected", "chosen_score", "rejected_score", "rm"} <= set(dataset.column_names)
    import make_tiny_models
    make_tiny_models.main(str(tmp_path / "m"))
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "m" / "lm")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m" / "lm")
    args = DPOConfig(output_dir=str(tmp_path / "o"), max_steps=1, per_device_train_batch_size=4, max_length=256, use_cpu=True,
                     report_to="none", save_strategy="no")
    result = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok).train()
    assert result.global_step == 1 and result.training_loss > 0
