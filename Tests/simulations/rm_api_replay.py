#!/usr/bin/env python3
"""A SIMULATION of the RM servers laser speaks, version by version: every route answers with the
exact JSON shapes (and the known quirks) documented in docs/rm-backends.md, read from each server's
source. There is no model: a text's raw score is len(text.encode()) / 10 - 2, so a test can compute
what each version must return. Not a real vLLM, SGLang or OpenRLHF; the real-model server is
examples/rm-servers/hf_rm_server.py.

One process, one listener per flavor; one line gives them all: `listening on {"FLAVOR": "URL", ...}`.
  vllm-0.9.2 vllm-0.10.1.1 vllm-0.11.0 vllm-0.11.2 vllm-0.13.0 vllm-0.14.1 vllm-0.16.0 vllm-0.34.0
  sglang-0.5.5  openrlhf  cross-encoder  loglik and loglik-ref (completions + tokenize, a made-up
  tokenizer; the reference model's log-probabilities are half the policy's)
POST counts per flavor and path: GET /counts.
"""
import json, math, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VLLM = ["0.9.2", "0.10.1.1", "0.11.0", "0.11.2", "0.13.0", "0.14.1", "0.16.0", "0.34.0"]


def raw(text):
    return len(text.encode()) / 10 - 2


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def v(text):
    return tuple(int(p) for p in text.split("."))


def vllm_use_activation(version, body):
    """Whether vLLM `version` applies the activation for this request body (docs/rm-backends.md)."""
    if v(version) < (0, 11, 1):
        return body.get("activation") is not False  # 0.10.1-0.11.0 /classify; callers handle the rest
    if v(version) < (0, 14, 1):
        # vllm/config/pooler.py get_use_activation, 0.11.1-0.13.0: `x := y is not None` is True when sent.
        if body.get("softmax") is not None or body.get("activation") is not None:
            return True
        return body.get("use_activation") is not False
    if v(version) < (0, 16, 0):
        for key in ("softmax", "activation", "use_activation"):
            if body.get(key) is not None:
                return body[key]
        return True
    return body.get("use_activation") is not False  # softmax and activation are ignored extras


def vllm_error(version, message, code=400):
    """An error as vLLM 0.9 (object: error) or 0.10+ ({"error": {...}}) writes it."""
    info = {"message": message, "type": "BadRequestError", "param": None, "code": code}
    return dict(object="error", **info) if v(version) < (0, 10) else {"error": info}


# A made-up tokenizer for the loglik flavor: the first listed piece that matches, else one character; so a
# prompt/response boundary can fall inside a token ("?\n" and "e r" span it in the tests).
PIECES = ["<|user|>\n", "<|assistant|>\n", "<|end|>\n", "<s>", "?\n", "e r", "ing", "th", "he", "ed"]


def tokenize(text):
    ids, i = [], 0
    while i < len(text):
        for n, piece in enumerate(PIECES):
            if text.startswith(piece, i):
                ids.append(1000 + n)
                i += len(piece)
                break
        else:
            ids.append(ord(text[i]))
            i += 1
    return ids


def piece(token):
    return PIECES[token - 1000] if token >= 1000 else chr(token)


def chat(messages, add_generation_prompt):
    out = "<s>"
    for m in messages:
        out += "<|%s|>\n%s<|end|>\n" % (m["role"], m["content"])
    return out + ("<|assistant|>\n" if add_generation_prompt else "")


def token_logprob(prefix, token, scale=1.0):
    """log p(token | prefix): a fixed made-up distribution, negative and finite (`scale`: loglik-ref's is half)."""
    return scale * (-0.1 - ((sum(prefix[-3:]) * 31 + token * 7) % 97) / 20)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    flavor = ""
    counts, lock = {}, threading.Lock()
    # vLLM sleep mode (VLLM_SERVER_DEV_MODE=1, --enable-sleep-mode): POST /sleep?level=N, POST /wake_up;
    # a sleeping server answers the model's endpoints with 503 (vLLM docs, "Sleep Mode").
    sleeping = {}

    def do_GET(self):
        if self.path == "/counts":
            with self.lock:
                return self.send(200, self.counts)
        if self.path == "/version" and self.flavor.startswith("vllm-"):
            return self.send(200, {"version": self.flavor[5:]})
        self.send(404, {"detail": "Not Found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        with self.lock:
            key = self.flavor + " " + self.path
            self.counts[key] = self.counts.get(key, 0) + 1
        f, path = self.flavor, self.path
        if f.startswith("vllm-"):
            return self.vllm(f[5:], path, body)
        if f == "sglang-0.5.5":
            texts = body["input"]
            if path == "/v1/embeddings":
                data = [{"embedding": [raw(t)], "index": i, "object": "embedding"} for i, t in enumerate(texts)]
                return self.send(200, {"data": data, "model": "rm", "object": "list", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            if path == "/v1/classify":  # softmax over one label: always [1.0]
                data = [{"index": i, "label": "LABEL_0", "probs": [1.0], "num_classes": 1} for i, _ in enumerate(texts)]
                return self.send(200, {"id": "classify-1", "object": "list", "created": 0, "model": "rm", "data": data, "usage": None})
        if f == "openrlhf" and path == "/get_reward":
            rewards = [raw(q) for q in body.get("query")]  # serve_rm.py reads only "query"
            return self.send(200, {"rewards": rewards, "scores": rewards, "extra_logs": {"dummy_scores": rewards}})
        if f == "cross-encoder" and path == "/score":
            data = [{"index": i, "object": "score", "score": raw(a + b)} for i, (a, b) in enumerate(zip(body["text_1"], body["text_2"]))]
            return self.send(200, {"id": "score-1", "object": "list", "created": 0, "model": "ce", "data": data})
        if f in ("loglik", "loglik-ref"):
            return self.loglik(path, body, 1.0 if f == "loglik" else 0.5)
        self.send(404, {"detail": "Not Found"})

    def vllm(self, version, path, body):
        route = path.split("?")[0]
        if route in ("/sleep", "/wake_up"):
            with self.lock:
                self.sleeping[self.flavor] = route == "/sleep"
            return self.send_empty(200)
        if self.sleeping.get(self.flavor) and route in ("/classify", "/pooling", "/score", "/v1/completions"):
            return self.send(503, {"error": {"message": "The model is sleeping. Wake it up with /wake_up.",
                                             "type": "ServiceUnavailableError", "code": 503}})
        if v(version) >= (0, 26) and "normalize" in body and path in ("/classify", "/pooling"):
            return self.send(400, {"error": {"message": "Parameter `normalize` was removed; use `use_activation` instead.",
                                             "type": "BadRequestError", "param": "normalize", "code": 400}})
        if path == "/score":  # a reward model: no Score API (200 with an error body before 0.16, then no route)
            if v(version) >= (0, 16):
                return self.send(404, {"detail": "Not Found"})
            return self.send(200, vllm_error(version, "The model does not support Score API"))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if path == "/classify":
            active = True if v(version) < (0, 10, 1) else vllm_use_activation(version, body)
            data = [{"index": i, "label": "LABEL_0", "probs": [sigmoid(raw(t)) if active else raw(t)], "num_classes": 1}
                    for i, t in enumerate(texts)]
            return self.send(200, {"id": "classify-1", "object": "list", "created": 0, "model": "rm", "data": data,
                                   "usage": {"prompt_tokens": 3, "total_tokens": 3, "completion_tokens": 0, "prompt_tokens_details": None}})
        if path == "/pooling":
            if v(version) < (0, 10, 1):
                active = False  # raw values
            elif v(version) < (0, 11, 1):
                active = True   # sigmoid, no per-request switch
            else:
                active = vllm_use_activation(version, body)
            data = []
            for i, t in enumerate(texts):  # per-token rows [n_tokens][1]; the last token's is the reward
                rows = [[raw(t[: k + 1])] for k in range(len(t))]
                if active:
                    rows = [[sigmoid(x) for x in row] for row in rows]
                data.append({"index": i, "object": "pooling", "data": rows})
            return self.send(200, {"id": "pool-1", "object": "list", "created": 0, "model": "rm", "data": data,
                                   "usage": {"prompt_tokens": 3, "total_tokens": 3, "completion_tokens": 0, "prompt_tokens_details": None}})
        self.send(404, {"detail": "Not Found"})

    def loglik(self, path, body, scale):
        if path == "/tokenize":
            if "messages" in body:
                text = chat(body["messages"], body.get("add_generation_prompt", True))
            else:
                text = ("<s>" if body.get("add_special_tokens", True) else "") + body["prompt"]
            ids = tokenize(text)
            return self.send(200, {"count": len(ids), "max_model_len": 4096, "tokens": ids})
        if path == "/v1/completions":
            if not body.get("echo") or body.get("logprobs") is None:
                return self.send(400, {"error": {"message": "laser must ask for echo and logprobs", "type": "BadRequestError", "code": 400}})
            choices = []
            for i, ids in enumerate(body["prompt"]):
                lps = [None] + [token_logprob(ids[:k], ids[k], scale) for k in range(1, len(ids))] + [-0.5]
                choices.append({"index": i, "text": "".join(piece(t) for t in ids) + "x", "finish_reason": "length",
                                "logprobs": {"tokens": [piece(t) for t in ids] + ["x"], "token_logprobs": lps,
                                             "text_offset": [], "top_logprobs": None}})
            return self.send(200, {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "lm", "choices": choices})
        if path == "/expected":
            # The answer by characters: the response's tokens are those that end after the prompt's text.
            out = []
            for prompt, response in zip(body["prompts"], body["responses"]):
                if body["template"] == "chat":
                    before = chat([{"role": "user", "content": prompt}], True)
                    text = chat([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], False)
                else:
                    before = "<s>" + prompt + body.get("separator", "")
                    text = before + response
                ids, end, total = tokenize(text), 0, 0.0
                for k, t in enumerate(ids):
                    end += len(piece(t))
                    if end > len(before) and k > 0:
                        total += token_logprob(ids[:k], t, scale)
                out.append(total)
            return self.send(200, {"sums": out})
        self.send(404, {"detail": "Not Found"})

    def send_empty(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

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
    flavors = ["vllm-" + x for x in VLLM] + ["sglang-0.5.5", "openrlhf", "cross-encoder", "loglik", "loglik-ref"]
    urls = {}
    for flavor in flavors:
        handler = type("H", (Handler,), {"flavor": flavor})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        urls[flavor] = "http://127.0.0.1:%d" % server.server_address[1]
    print("SIMULATED RM servers listening on " + json.dumps(urls), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
