#!/usr/bin/env python3
"""A reward model for laser's `subprocess` backend: JSON lines over stdin and stdout.

laser's worker starts this script once (on the first request for this RM) and keeps it. For each
request line on stdin it writes exactly one reply line on stdout:

    <- {"id": 7, "prompts": [{"prompt_id": "q1", "prompt": "...", "candidates": ["a", "b"], "reference": "42"}]}
    -> {"id": 7, "scores": [[0.31, -1.2]]}            one finite number per candidate, in order
    -> {"id": 7, "error": "what went wrong"}          the task fails (and is retried); the process stays

stdout is the protocol channel: log to stderr (the worker's log). Exit when stdin closes.
Full protocol: docs/rm-backends.md. Only the Python standard library is needed.

    reward_models:
      - name: my-rm
        kind: subprocess
        params: {command: "python3 examples/rm-servers/subprocess_rm.py", timeout_ms: 60000}
"""
import json
import sys


# ----------------------------------------------------------------------------------------------
# REPLACE THIS: the reward model.
# ----------------------------------------------------------------------------------------------
def score(prompt: str, response: str) -> float:
    """PLACEHOLDER, not a real reward model: a simple deterministic score so that the protocol and
    laser's plumbing can be tested without a GPU. It is the share of the prompt's distinct words that
    the response repeats, minus 0.001 per character of the response (a tie-breaker). Replace it with
    your model (see score_batch below for the real thing)."""
    prompt_words = set(prompt.lower().split())
    response_words = set(response.lower().split())
    overlap = len(prompt_words & response_words) / (1 + len(prompt_words))
    return round(overlap - 0.001 * len(response), 6)


def score_batch(pairs):
    """Scores a list of (prompt, response) pairs. Batch here when your model can."""
    return [score(prompt, response) for prompt, response in pairs]


# The real thing, on a GPU (pip install torch transformers): a sequence-classification reward model
# with one output (for example Skywork/Skywork-Reward-Llama-3.1-8B-v0.2). Uncomment, and delete the
# placeholder score_batch above. The worker passes its environment on, so CUDA_VISIBLE_DEVICES set
# for the worker picks the GPU; "cuda" is then the first visible one.
#
# import os
# import torch
# from transformers import AutoModelForSequenceClassification, AutoTokenizer
#
# MODEL = os.environ.get("RM_MODEL", "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2")
# tokenizer = AutoTokenizer.from_pretrained(MODEL)
# model = AutoModelForSequenceClassification.from_pretrained(
#     MODEL, torch_dtype=torch.bfloat16, num_labels=1).to("cuda").eval()
#
# @torch.no_grad()
# def score_batch(pairs, micro_batch=16):
#     texts = [tokenizer.apply_chat_template(
#                  [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False)
#              for p, r in pairs]
#     scores = []
#     for i in range(0, len(texts), micro_batch):
#         enc = tokenizer(texts[i:i + micro_batch], return_tensors="pt", padding=True, truncation=True,
#                         max_length=4096, add_special_tokens=False).to("cuda")
#         scores += model(**enc).logits[:, 0].float().tolist()
#     return scores
# ----------------------------------------------------------------------------------------------


def handle(request):
    prompts = request["prompts"]
    pairs = [(item["prompt"], candidate) for item in prompts for candidate in item["candidates"]]
    flat = score_batch(pairs)
    scores, start = [], 0
    for item in prompts:
        n = len(item["candidates"])
        scores.append([float(s) for s in flat[start:start + n]])
        start += n
    return {"id": request["id"], "scores": scores}


def main():
    protocol = sys.stdout
    sys.stdout = sys.stderr  # a stray print() from a library must not corrupt the protocol
    print("subprocess_rm: ready", file=sys.stderr, flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request_id = None
        try:
            request = json.loads(line)
            request_id = request.get("id")
            reply = handle(request)
            text = json.dumps(reply, allow_nan=False)  # a NaN score becomes an error reply
        except Exception as error:  # report, keep serving
            text = json.dumps({"id": request_id, "error": f"{type(error).__name__}: {error}"})
        protocol.write(text + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
