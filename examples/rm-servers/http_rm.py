#!/usr/bin/env python3
"""A reward model server for laser's `http` backend, standard library only.

Routes (both score with the same `score` function below):

  POST /get_reward   OpenRLHF's remote reward model API (laser: api: openrlhf)
      <- {"query": ["<prompt><response>", ...], "prompts": ["<prompt>", ...], "labels": ["<reference or empty>", ...]}
      -> {"rewards": [0.5, ...]}                      one number per query, in order

  POST /score, /v1/score   the shape of vLLM's score API (laser: api: cross-encoder, formerly vllm-score)
      <- {"model": "...", "text_1": ["<prompt>", ...], "text_2": ["<response>", ...]}   (text_1 may be one string)
      -> {"id": "...", "object": "list", "model": "...", "data": [{"index": 0, "object": "score", "score": 0.5}, ...], "usage": {...}}

    python3 examples/rm-servers/http_rm.py --port 5000
    # prints "http_rm listening on http://127.0.0.1:5000" when ready (--port 0: any free port)

    reward_models:
      - {name: my-rm, kind: http, params: {url: "http://127.0.0.1:5000/get_reward", api: openrlhf}}

Protocol details and how to run a real model on a GPU: docs/rm-backends.md.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
# with one output. Uncomment, and delete the placeholder score_batch above. Start the server with
# CUDA_VISIBLE_DEVICES=N to pick its GPU. The lock keeps the GPU to one batch at a time (the server
# answers requests on several threads).
#
# import os
# import torch
# from transformers import AutoModelForSequenceClassification, AutoTokenizer
#
# MODEL = os.environ.get("RM_MODEL", "Skywork/Skywork-Reward-Llama-3.1-8B-v0.2")
# tokenizer = AutoTokenizer.from_pretrained(MODEL)
# model = AutoModelForSequenceClassification.from_pretrained(
#     MODEL, torch_dtype=torch.bfloat16, num_labels=1).to("cuda").eval()
# gpu = threading.Lock()
#
# @torch.no_grad()
# def score_batch(pairs, micro_batch=16):
#     texts = [tokenizer.apply_chat_template(
#                  [{"role": "user", "content": p}, {"role": "assistant", "content": r}], tokenize=False)
#              for p, r in pairs]
#     scores = []
#     with gpu:
#         for i in range(0, len(texts), micro_batch):
#             enc = tokenizer(texts[i:i + micro_batch], return_tensors="pt", padding=True, truncation=True,
#                             max_length=4096, add_special_tokens=False).to("cuda")
#             scores += model(**enc).logits[:, 0].float().tolist()
#     return scores
# ----------------------------------------------------------------------------------------------


class BadRequest(Exception):
    """The request does not have the API's shape: HTTP 400 (laser does not retry those)."""


def field(body, key, default=...):
    if not isinstance(body, dict) or (key not in body and default is ...):
        raise BadRequest(f"missing field {key!r}")
    return body.get(key, default)


def split_query(query, prompt):
    """OpenRLHF sends prompt + response joined; with the prompt at hand, take the response back out."""
    if prompt is not None and query.startswith(prompt):
        return prompt, query[len(prompt):]
    return "", query


def get_reward(body):
    queries = field(body, "query")
    prompts = field(body, "prompts", None) or [None] * len(queries)
    if len(prompts) != len(queries):
        raise BadRequest(f"{len(queries)} queries but {len(prompts)} prompts")
    rewards = score_batch([split_query(q, p) for q, p in zip(queries, prompts)])
    return {"rewards": [float(r) for r in rewards]}


def vllm_score(body):
    text_1, text_2 = field(body, "text_1"), field(body, "text_2")
    text_1 = [text_1] if isinstance(text_1, str) else text_1
    text_2 = [text_2] if isinstance(text_2, str) else text_2
    if len(text_1) == 1:
        text_1 = text_1 * len(text_2)
    if len(text_1) != len(text_2) or not text_2:
        raise BadRequest("Input lengths must be either 1:1, 1:N or N:N")
    scores = score_batch(list(zip(text_1, text_2)))
    return {
        "id": "score-laser-example", "object": "list", "created": 0, "model": field(body, "model", None) or "example",
        "data": [{"index": i, "object": "score", "score": float(s)} for i, s in enumerate(scores)],
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }


ROUTES = {"/get_reward": get_reward, "/score": vllm_score, "/v1/score": vllm_score}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        route = ROUTES.get(self.path)
        if route is None:
            return self.reply(404, {"error": f"no route {self.path}; use {', '.join(ROUTES)}"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
        except Exception as error:
            return self.reply(400, {"error": f"bad request: {error}"})
        try:
            result = route(body)
            json.dumps(result, allow_nan=False)  # a NaN score is a server error, not a number
        except BadRequest as error:
            return self.reply(400, {"error": str(error)})
        except Exception as error:  # the model failed: a server error, which laser retries
            return self.reply(500, {"error": f"{type(error).__name__}: {error}"})
        self.reply(200, result)

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, {"status": "ok"})
        self.reply(404, {"error": "POST to " + ", ".join(ROUTES)})

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("http_rm: " + (fmt % args) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000, help="0: any free port")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    print(f"http_rm listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
