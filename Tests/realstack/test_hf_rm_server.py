"""laser workers scoring through a real transformers model server, every score kind, against what
the model computes directly in Python (no server, no padding, no laser)."""
import json
import os

import pytest
import torch
import transformers

from conftest import batch_lines, run_laser

PROMPTS = [
    ("What is two plus two?", ["Two plus two is 4.", "It is 5.", "4", "The answer is 4. #### 4"]),
    ("Name a colour.", ["red", "Blue is a colour.", "green, yellow", "The sea is blue."]),
    ("Maria saves 8 dollars each week for 11 weeks. How much does she save?", ["8*11=88. The answer is 88.", "She saves 19.", "88", "Let us think step by step. 8*11=88."]),
    ("Write one sentence about the sea.", ["The sea is wide and deep.", "Sea.", "The sea is blue and wide and deep and old.", "I like the sea."]),
    ("The answ", ["er is 42.", "er is 12", "ers are many", "er: 77"]),   # the boundary falls inside "answer"
    ("Let us think step", [" by step. First add.", "s: add, then check.", " by step.", "!"]),
]


def write_input(path, prompts):
    with open(path, "w") as f:
        for i, (prompt, candidates) in enumerate(prompts):
            f.write(json.dumps({"id": "p%d" % i, "prompt": prompt, "candidates": [{"text": c} for c in candidates]}) + "\n")


class Direct:
    """The scores computed from the models themselves, one text at a time."""

    def __init__(self, models):
        self.rm_tok = transformers.AutoTokenizer.from_pretrained(models / "rm")
        self.rm = transformers.AutoModelForSequenceClassification.from_pretrained(models / "rm").eval()
        self.tok = transformers.AutoTokenizer.from_pretrained(models / "lm")
        self.lm = transformers.AutoModelForCausalLM.from_pretrained(models / "lm").eval()
        self.ref = transformers.AutoModelForCausalLM.from_pretrained(models / "ref-lm").eval()

    @torch.no_grad()
    def classifier(self, text):
        return self.rm(**self.rm_tok(text, return_tensors="pt")).logits[0, 0].item()

    @torch.no_grad()
    def logprob_sum(self, model, ids, first):
        logits = model(input_ids=torch.tensor([ids])).logits[0]
        lp = torch.log_softmax(logits.float(), dim=-1)
        return sum(lp[t - 1, ids[t]].item() for t in range(max(first, 1), len(ids))), len(ids) - max(first, 1)

    def chat_ids(self, messages, generation):
        ids = self.tok.apply_chat_template(messages, add_generation_prompt=generation, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def loglik_chat(self, model, prompt, response):
        user = [{"role": "user", "content": prompt}]
        head = self.chat_ids(user, True)
        full = self.chat_ids(user + [{"role": "assistant", "content": response}], False)
        assert full[: len(head)] == head, "the chat template keeps the prompt's tokens"
        return self.logprob_sum(model, full, len(head))[0]

    def loglik_plain(self, model, prompt, response):
        """By characters: the response's tokens are those that end after the prompt's text."""
        enc = self.tok(prompt + response, return_offsets_mapping=True)
        first = next(i for i, (_, end) in enumerate(enc["offset_mapping"]) if end > len(prompt))
        return self.logprob_sum(model, enc["input_ids"], first)


@pytest.fixture(scope="module")
def direct(tiny_models):
    return Direct(tiny_models)


def test_the_boundary_case_really_falls_inside_a_token(direct):
    enc = direct.tok("The answer is 42.", return_offsets_mapping=True)
    ends = [end for _, end in enc["offset_mapping"]]
    assert len("The answ") not in ends, "the test prompt must split a token: %s" % enc.tokens()


def test_laser_scores_through_every_api_equal_the_models_own(hf_server, direct, tmp_path):
    write_input(tmp_path / "input.jsonl", PROMPTS)
    rms = {
        "classify": {"api": "vllm-classify", "url": hf_server + "/classify"},
        "pooling": {"api": "vllm-pooling", "url": hf_server + "/pooling", "version": "0.14.1"},
        "openrlhf": {"api": "openrlhf", "url": hf_server + "/get_reward"},
        "loglik-chat": {"api": "loglik", "url": hf_server + "/v1/completions"},
        "loglik-plain-mean": {"api": "loglik", "url": hf_server + "/v1/completions", "template": "none", "reduce": "mean"},
        "dpo": {"api": "loglik", "url": hf_server + "/v1/completions", "reduce": "dpo", "beta": "0.5",
                "ref_url": hf_server + "/ref/v1/completions"},
    }
    config = {
        "input": ["input.jsonl"], "seed": 3, "strategy": "sequential", "batch_size": 1, "shard_size": 1,
        "pairs": {"mode": "best-vs-rest", "max_pairs": 100, "margin": 0},
        "reward": {"source": "label-pair-accuracy", "allow_unrewarded": True},
        "reward_models": [{"name": n, "kind": "http", "params": p} for n, p in rms.items()],
        "workers": {"local": 2, "slots": 2},
    }
    (tmp_path / "config.yaml").write_text(json.dumps(config))
    run_laser(tmp_path / "config.yaml", tmp_path / "run")
    lines = batch_lines(tmp_path / "run")
    texts = dict(PROMPTS)

    def expected(rm, prompt, response):
        if rm in ("classify", "pooling", "openrlhf"):
            return direct.classifier(prompt + response)
        if rm == "loglik-chat":
            return direct.loglik_chat(direct.lm, prompt, response)
        if rm == "loglik-plain-mean":
            total, n = direct.loglik_plain(direct.lm, prompt, response)
            return total / n
        return 0.5 * (direct.loglik_chat(direct.lm, prompt, response) - direct.loglik_chat(direct.ref, prompt, response))

    worst = {}
    for line in lines:
        prompt = line["prompt"]
        assert line["chosen"] in texts[prompt] and line["rejected"] in texts[prompt]
        for side in ("chosen", "rejected"):
            gap = abs(line[side + "_score"] - expected(line["rm"], prompt, line[side]))
            worst[line["rm"]] = max(worst.get(line["rm"], 0.0), gap)
    print("max abs difference laser vs direct, by RM:", json.dumps(worst))
    assert set(worst) == set(rms), "every RM scored a batch (sequential strategy): %s" % sorted(worst)
    assert any(l["rm"] == "loglik-plain-mean" and l["prompt"] == "The answ" for l in lines), \
        "batch t uses RM t mod 6: the boundary-inside-a-token prompt (5th) goes to the plain-text log-likelihood RM"
    for rm, gap in worst.items():
        assert gap < 1e-4, "%s: laser's scores differ from the model's by %g" % (rm, gap)
