"""laser export: the Parquet and JSONL datasets load with `datasets` (and pyarrow) exactly as the batch
files read, and TRL's DPOTrainer trains on them without renaming anything."""
import json
import os
import subprocess

import datasets
import pyarrow.parquet as pq
import transformers
from trl import DPOConfig, DPOTrainer

from conftest import LASER, ROOT, batch_lines


def test_export_loads_as_the_batch_files_read_and_trains_dpo(tmp_path):
    run = tmp_path / "run"
    subprocess.run([LASER, "run", os.path.join(ROOT, "examples", "config.yaml"), "--out", str(run)], check=True, capture_output=True)
    for fmt in ("parquet", "jsonl"):
        subprocess.run([LASER, "export", str(run), "--format", fmt, "--out", str(tmp_path / fmt)], check=True, capture_output=True)
    expected = batch_lines(run)
    parquet = datasets.load_dataset(str(tmp_path / "parquet"), split="train")
    jsonl = datasets.load_dataset(str(tmp_path / "jsonl"), split="train")
    assert parquet.num_rows == jsonl.num_rows == len(expected) > 0
    for got_p, got_j, want in zip(parquet, jsonl, expected):
        assert got_p == want and got_j == want, (got_p, want)
    table = pq.read_table(tmp_path / "parquet" / "data" / "train-00000-of-00001.parquet")
    assert table.schema.field("iteration").type == "int64" and table.schema.field("chosen_score").type == "double"
    card = open(tmp_path / "parquet" / "README.md").read()
    assert "- dpo" in card and "dataset_info:" in card and "num_examples: %d" % len(expected) in card

    import sys
    sys.path.insert(0, os.path.join(ROOT, "examples", "rm-servers"))
    import make_tiny_models
    make_tiny_models.main(str(tmp_path / "m"))
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "m" / "lm")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m" / "lm")
    args = DPOConfig(output_dir=str(tmp_path / "o"), max_steps=1, per_device_train_batch_size=4, max_length=256, use_cpu=True,
                     report_to="none", save_strategy="no")
    assert DPOTrainer(model=model, args=args, train_dataset=parquet, processing_class=tok).train().global_step == 1
