#!/usr/bin/env python3
"""A real reward-model server built on Hugging Face `transformers`, speaking the HTTP shapes laser's
`http` backends use (docs/rm-backends.md), so one process can stand in for vLLM on a machine
without a GPU and be checked against the model itself:

  sequence-classification RM (--rm DIR, an *ForSequenceClassification model):
    POST /classify    vLLM's shape: {"input": [...], "use_activation"?} -> data[i].probs
    POST /pooling     vLLM's shape for reward models: data[i].data = per-token rows [n_tokens][num_labels]
                      (the score head on every token; the last row is the sequence's score)
    POST /get_reward  OpenRLHF's serve_rm.py shape: {"query": [...]} -> {"rewards", "scores", "extra_logs"}
  causal LM (--lm DIR, optional --ref-lm DIR for DPO's reference model):
    POST /tokenize              vLLM's shape: {"prompt", "add_special_tokens"} or {"messages",
                                "add_generation_prompt", "add_special_tokens"} -> {"tokens", "count", "max_model_len"}
    POST /v1/completions        OpenAI's shape with echo: prompt token lists, logprobs -> choices[i].logprobs.token_logprobs
    POST /ref/v1/completions    the same for the reference model
  GET /version   {"version": "0.14.1"}: the vLLM version whose request shapes this server follows
  GET /stats     requests and texts served per path

Scores are the model's raw outputs (float32, CPU or the first GPU). Model calls are serialised by a
lock; each request's texts run as one padded batch, so batching on the client side is what makes
it fast. Start: python hf_rm_server.py --rm DIR --lm DIR [--ref-lm DIR] [--host 127.0.0.1] [--port 8000]
Tiny models for trying it: make_tiny_models.py. Prints "... listening on URL" when ready.
"""
import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
import transformers

VLLM_SHAPES = "0.14.1"


class Models:
    def __init__(self, rm, lm, ref_lm, device):
        self.device = device
        self.lock = threading.Lock()
        self.rm = self.rm_tokenizer = self.lm = self.ref = self.lm_tokenizer = None
        if rm:
            self.rm_tokenizer = transformers.AutoTokenizer.from_pretrained(rm)
            self.rm = transformers.AutoModelForSequenceClassification.from_pretrained(rm, dtype=torch.float32).to(device).eval()
        if lm:
            self.lm_tokenizer = transformers.AutoTokenizer.from_pretrained(lm)
            self.lm = transformers.AutoModelForCausalLM.from_pretrained(lm, dtype=torch.float32).to(device).eval()
        if ref_lm:
            self.ref = transformers.AutoModelForCausalLM.from_pretrained(ref_lm, dtype=torch.float32).to(device).eval()

    def _encode(self, texts):
        # Right padding: the classifier finds each text's last non-pad token (pad_token_id).
        self.rm_tokenizer.padding_side = "right"
        return self.rm_tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=True).to(self.device)

    @torch.no_grad()
    def sequence_scores(self, texts):
        """[num_labels] per text: the classifier's logits."""
        with self.lock:
            return self.rm(**self._encode(texts)).logits.float().cpu().tolist()

    @torch.no_grad()
    def token_scores(self, texts):
        """[n_tokens][num_labels] per text: the score head on every token's last hidden state."""
        with self.lock:
            enc = self._encode(texts)
            hidden = self.rm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            rows = self.rm.score(hidden).float().cpu()
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        return [rows[i, : int(n)].tolist() for i, n in enumerate(lengths)]

    def tokenize(self, body):
        tok = self.lm_tokenizer
        if "messages" in body:
            ids = tok.apply_chat_template(body["messages"], add_generation_prompt=body.get("add_generation_prompt", True),
                                          tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        return tok(body["prompt"], add_special_tokens=body.get("add_special_tokens", True))["input_ids"]

    @torch.no_grad()
    def token_logprobs(self, model, sequences):
        """Per sequence: [None] + log p(token_t | tokens_<t), then one greedy token and its log-prob."""
        longest = max(len(s) for s in sequences)
        pad = self.lm_tokenizer.pad_token_id or 0
        ids = torch.tensor([s + [pad] * (longest - len(s)) for s in sequences], device=self.device)
        mask = torch.tensor([[1] * len(s) + [0] * (longest - len(s)) for s in sequences], device=self.device)
        with self.lock:
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1).cpu()
        out = []
        for i, s in enumerate(sequences):
            prompt = [None] + [logprobs[i, t - 1, s[t]].item() for t in range(1, len(s))]
            nxt = int(logprobs[i, len(s) - 1].argmax())
            out.append((prompt, nxt, logprobs[i, len(s) - 1, nxt].item()))
        return out


def activation(scores, use):
    if not use:
        return scores
    t = torch.tensor(scores)
    return (torch.sigmoid(t) if t.shape[-1] == 1 else torch.softmax(t, dim=-1)).tolist()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    models = None
    stats = {}
    stats_lock = threading.Lock()

    def count(self, texts):
        with self.stats_lock:
            entry = self.stats.setdefault(self.path, {"requests": 0, "texts": 0})
            entry["requests"] += 1
            entry["texts"] += texts

    def do_GET(self):
        if self.path == "/version":
            return self.send(200, {"version": VLLM_SHAPES})
        if self.path == "/stats":
            with self.stats_lock:
                return self.send(200, self.stats)
        self.send(404, {"detail": "Not Found"})

    def do_POST(self):
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        except ValueError as error:
            return self.send(400, {"error": {"message": "bad JSON: %s" % error, "type": "BadRequestError", "code": 400}})
        m = self.models
        try:
            if self.path in ("/classify", "/pooling", "/get_reward"):
                if m.rm is None:
                    return self.send(400, {"error": {"message": "no --rm model loaded", "type": "BadRequestError", "code": 400}})
                texts = body.get("query") if self.path == "/get_reward" else body.get("input")
                texts = [texts] if isinstance(texts, str) else texts
                self.count(len(texts))
                use = body.get("use_activation") is not False  # vLLM >= 0.11.1 semantics, as in 0.14.1
                if self.path == "/get_reward":
                    rewards = [row[0] for row in m.sequence_scores(texts)]
                    return self.send(200, {"rewards": rewards, "scores": rewards, "extra_logs": {"dummy_scores": rewards}})
                if self.path == "/classify":
                    data = [{"index": i, "label": "LABEL_0", "probs": activation(row, use), "num_classes": len(row)}
                            for i, row in enumerate(m.sequence_scores(texts))]
                    return self.send(200, {"id": "classify-hf", "object": "list", "created": 0, "model": "hf", "data": data})
                data = [{"index": i, "object": "pooling", "data": [activation(r, use) for r in rows]}
                        for i, rows in enumerate(m.token_scores(texts))]
                return self.send(200, {"id": "pool-hf", "object": "list", "created": 0, "model": "hf", "data": data})
            if self.path == "/tokenize":
                self.count(1)
                ids = m.tokenize(body)
                return self.send(200, {"count": len(ids), "max_model_len": 1024, "tokens": ids})
            if self.path in ("/v1/completions", "/ref/v1/completions"):
                model = m.lm if self.path == "/v1/completions" else m.ref
                if model is None:
                    return self.send(400, {"error": {"message": "no model for %s" % self.path, "type": "BadRequestError", "code": 400}})
                prompts = body["prompt"]
                if not (isinstance(prompts, list) and prompts and all(isinstance(p, list) for p in prompts)):
                    return self.send(400, {"error": {"message": "this server takes prompt as token-id lists", "code": 400}})
                self.count(len(prompts))
                choices = []
                for i, (lps, nxt, lp) in enumerate(m.token_logprobs(model, prompts)):
                    tokens = m.lm_tokenizer.convert_ids_to_tokens(prompts[i] + [nxt])
                    choices.append({"index": i, "text": m.lm_tokenizer.decode(prompts[i] + [nxt]), "finish_reason": "length",
                                    "logprobs": {"tokens": tokens, "token_logprobs": lps + [lp], "text_offset": None, "top_logprobs": None}})
                return self.send(200, {"id": "cmpl-hf", "object": "text_completion", "created": 0, "model": "hf", "choices": choices})
        except (KeyError, TypeError, ValueError) as error:
            return self.send(400, {"error": {"message": "%s: %r" % (type(error).__name__, error), "type": "BadRequestError", "code": 400}})
        self.send(404, {"detail": "Not Found"})

    def send(self, status, value):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rm", help="a sequence-classification model directory (from_pretrained)")
    parser.add_argument("--lm", help="a causal LM directory, for log-likelihood scoring")
    parser.add_argument("--ref-lm", help="the reference causal LM (DPO's implicit reward)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if not (args.rm or args.lm):
        parser.error("give --rm, --lm or both")
    Handler.models = Models(args.rm, args.lm, args.ref_lm, args.device)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print("hf RM server listening on http://%s:%d" % (args.host, server.server_address[1]), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
