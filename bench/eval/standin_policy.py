"""The STAND-IN policy of the evaluation: a log-linear re-ranker, not a language model.

For a prompt x with sampled responses y_1..y_n (the dataset's candidates), the policy is

    pi(y_i | x) = exp(theta . phi(x, y_i)) / sum_j exp(theta . phi(x, y_j))

over that prompt's responses. It is trained with the paper's loss on the preference pairs that laser
emits: DPO (beta = 0.1, reference = the untrained policy theta = 0, i.e. uniform) plus 1.0 x the NLL
of the chosen response, by plain SGD, one step per mini-batch. Its "answer" to a prompt is its most
likely response; held-out accuracy is the share of held-out prompts whose most likely response is
correct (ties between top responses count as the expected accuracy of a uniform pick among them, so
the untrained policy scores exactly the mean correctness of the samples: the SFT row).

phi(x, y) are generic features of a response that can carry over from one prompt to another:

    arithmetic   the <<a*b=c>> calculator annotations: present, share right, any wrong, whether the
                 final answer is the result of the last calculation
    agreement    share of the other responses with the same final answer; is it the plurality answer
    length       log characters, log characters relative to the prompt's mean, log lines
    format       has an answer marker, answer is an integer / negative / a number at all
    grounding    the final answer is one of the question's numbers (copied); share of the question's
                 numbers that the solution uses
    instructions share of the verifiable instructions stated in the prompt (word counts, case, quotes,
                 keywords, commas, bullets; the demo's IFEval-style family) that the response meets;
                 whether the prompt states any

plus a copy of every feature per task family (so the policy can weigh agreement differently for math
and for trivia, as an LLM knows what kind of question it is answering; laser's bandit never sees the
family). Features are standardised with the mean and spread over the TRAIN candidates (no labels used).

What it can learn: which of these signals, in which combination, picks right answers, and only as
well as the preference pairs it is trained on tell it. What it cannot learn: anything these features
do not describe: the meaning of a GSM8K problem (whether the solution set up the right equation),
facts (the demo's trivia: it can never know that Canberra is right), or to write a new response (it
only re-ranks the fixed samples, so the candidates are never re-sampled from the updated policy as in
the paper's iterations). Its ceiling on a dataset is what a linear re-ranker over these features
reaches when trained on the true labels (reported as the label-oracle reference row).
"""

import ast
import math
import operator
import re

# -- answers and calculator annotations ----------------------------------------------------------

_NUM = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def _number(text):
    if text is None:
        return None
    t = text.strip().replace(",", "").replace("$", "").rstrip(".").rstrip("%")
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def canonical(v):
    r = round(v * 1e6) / 1e6
    if r == int(r):
        return str(int(r))
    return ("%.6f" % r).rstrip("0").rstrip(".")


def final_answer(text):
    """Roughly laser's FinalAnswer: after the last ####, A:, Answer: or 'The answer is', else the
    last number. Returns a comparable key (canonical number or lower-cased text), or None."""
    raw = None
    for pat in (r"####\s*([^\n]*)", r"(?:^|\s)A:\s*([^\n]*)", r"(?i)answer:\s*([^\n]*)", r"(?i)the answer is\s*([^\n]*)"):
        ms = list(re.finditer(pat, text))
        if ms:
            raw = ms[-1].group(1).strip()
            break
    if raw is None:
        nums = _NUM.findall(text)
        raw = nums[-1] if nums else None
    if raw is None:
        return None
    raw = raw.strip().rstrip(".")
    v = _number(raw)
    if v is None:
        m = _NUM.search(raw) if re.fullmatch(r"[-$\d.,\s]*[a-zA-Z]*", raw) else None
        v = _number(m.group(0)) if m else None
    if v is not None:
        return canonical(v)
    key = raw.lower().strip(" .!?\"'")
    return key or None


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _eval(node):
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Div) and b == 0:
            raise ZeroDivisionError
        return _OPS[type(node.op)](a, b)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    raise ValueError("unsupported")


def annotations(text):
    """[(correct: bool, result: float or None)] for each <<expr=result>>."""
    out = []
    for expr, result in re.findall(r"<<([^=<>]*)=([^<>]*)>>", text):
        res = _number(result)
        e = expr.replace("x", "*").replace("\u00d7", "*").replace("\u00f7", "/").replace("$", "")
        e = re.sub(r"(?<=\d),(?=\d)", "", e)
        try:
            if len(e) > 200 or not re.fullmatch(r"[\d.+\-*/() ]+", e):
                raise ValueError
            v = _eval(ast.parse(e, mode="eval"))
            ok = res is not None and (abs(v - res) <= 1e-6 * max(1.0, abs(v)) or abs(round(v, 2) - res) < 1e-9)
        except (ValueError, SyntaxError, ZeroDivisionError, RecursionError, OverflowError):
            ok = False
        out.append((ok, res))
    return out


# -- verifiable instructions (the demo's IFEval-style family) ------------------------------------

_NUMWORDS = {w: i + 1 for i, w in enumerate(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMPAT = r"(\d{1,4}|" + "|".join(_NUMWORDS) + r")"


def _n(t):
    return int(t) if t.isdigit() else _NUMWORDS.get(t)


def instructions(prompt):
    """(kind, arg) for the verifiable instructions a prompt states (a compact version of laser's
    instruction-following RM; the stand-in is allowed to know what an instruction asks for)."""
    p = prompt.lower().replace("\u2018", "'").replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    found = []
    for bound, n in re.findall(r"\b(exactly|at most|at least|no more than|no fewer than|no less than|fewer than|less than|more than|up to)\s+" + _NUMPAT + r"\s+words?\b", p):
        found.append(("words", (bound, _n(n))))
    for n, d in re.findall(r"\b" + _NUMPAT + r"\s+words?\s+or\s+(less|fewer|more)\b", p):
        found.append(("words", ("at least" if d == "more" else "at most", _n(n))))
    if re.search(r"\b(?:all|entirely|only|in|use|using)\s+(?:in\s+)?(?:lowercase|lower case|lower-case)\b|\b(?:lowercase|lower case) letters only\b", p):
        found.append(("lower", None))
    if re.search(r"\b(?:all|entirely|only|in|use|using)\s+(?:in\s+)?(?:uppercase|upper case|upper-case|capital letters|capitals|caps)\b", p):
        found.append(("upper", None))
    for a, b in re.findall(r"\b(?:end|finish)\s+(?:your\s+(?:response|answer|reply)\s+|it\s+)?with\s+(?:the\s+(?:exact\s+)?(?:word|phrase)\s+)?(?:'([^']+)'|\"([^\"]+)\")", p):
        found.append(("ends", a or b))
    for m in re.finditer(r"(\b(?:do not|don't|dont|never|avoid)\s+(?:to\s+)?)?\b(?:include|use|using|mention|contain)s?\s+(?:the\s+)?(?:key\s?words?|words?|phrases?)\s+((?:['\"][^'\"]+['\"](?:,?\s*(?:and|or)?\s*)?)+)", p):
        for w in re.findall(r"['\"]([^'\"]+)['\"]", m.group(2)):
            found.append(("excludes" if m.group(1) else "includes", w.strip()))
    if re.search(r"\b(?:do not|don't|dont|never)\s+use\s+(?:any\s+)?commas\b|\bwithout\s+(?:using\s+)?(?:any\s+)?commas\b|\bno\s+commas\b|\b(?:avoid|refrain from)\s+(?:using\s+)?(?:any\s+)?commas\b", p):
        found.append(("nocommas", None))
    for n in re.findall(r"\b" + _NUMPAT + r"\s+(?:bullet(?:\s+|-)?points?|bullets)\b", p):
        found.append(("bullets", _n(n)))
    if re.search(r"\b(?:wrap|enclose)\s+(?:your\s+)?(?:entire\s+|whole\s+)?(?:response|answer|reply|output)\s+(?:in|with|inside|within)\s+double\s+quot(?:es|ation\s+marks?)\b", p):
        found.append(("quotes", None))
    return found


def _has_word(text, word):
    return re.search(r"(?<![^\W_])" + re.escape(word.lower()) + r"(?![^\W_])", text.lower()) is not None


def satisfied(kind, arg, r):
    if kind == "words":
        bound, n = arg
        w = len([t for t in r.split() if any(c.isalnum() for c in t)])
        return {"exactly": w == n, "at most": w <= n, "no more than": w <= n, "up to": w <= n, "at least": w >= n,
                "no fewer than": w >= n, "no less than": w >= n, "fewer than": w < n, "less than": w < n,
                "more than": w > n}[bound]
    if kind == "lower":
        return any(c.isalpha() for c in r) and r == r.lower()
    if kind == "upper":
        return any(c.isalpha() for c in r) and r == r.upper()
    if kind == "ends":
        t = r.lower().rstrip(" \n\t.!?\"',;:")
        return t.endswith(arg.lower())
    if kind == "includes":
        return _has_word(r, arg)
    if kind == "excludes":
        return not _has_word(r, arg)
    if kind == "nocommas":
        return "," not in r
    if kind == "bullets":
        return sum(1 for line in r.splitlines() if line.lstrip(" \t").startswith(("- ", "* "))) == arg
    if kind == "quotes":
        t = r.strip()
        return len(t) >= 2 and t[0] == '"' and t[-1] == '"'
    return False


# -- features ------------------------------------------------------------------------------------

FEATURES = [
    "has_calc", "calc_right_share", "calc_any_wrong", "answer_is_last_calc", "answer_not_last_calc",
    "agreement", "plurality", "log_chars", "rel_log_chars", "log_lines",
    "has_marker", "answer_integer", "answer_negative", "answer_numeric",
    "answer_in_question", "question_numbers_used", "instr_share", "prompt_has_instr",
]


def response_features(prompt, texts):
    """One feature list (in FEATURES order) per response of a prompt."""
    keys = [final_answer(t) for t in texts]
    counts = {}
    for k in keys:
        if k is not None:
            counts[k] = counts.get(k, 0) + 1
    top = max(counts.values()) if counts else 0
    qnums = {canonical(v) for v in (_number(s) for s in _NUM.findall(prompt)) if v is not None}
    logc = [math.log1p(len(t)) for t in texts]
    mean_logc = sum(logc) / len(logc)
    instr = instructions(prompt)
    out = []
    for t, k, lc in zip(texts, keys, logc):
        ann = annotations(t)
        right = sum(1 for ok, _ in ann if ok)
        last = ann[-1][1] if ann else None
        last_key = canonical(last) if last is not None else None
        v = _number(k) if k is not None else None
        snums = {canonical(x) for x in (_number(s) for s in _NUM.findall(re.sub(r"<<[^>]*>>", " ", t))) if x is not None}
        f = [
            1.0 if ann else 0.0,
            right / len(ann) if ann else 0.0,
            1.0 if ann and right < len(ann) else 0.0,
            1.0 if ann and k is not None and k == last_key else 0.0,
            1.0 if ann and (k is None or k != last_key) else 0.0,
            (counts.get(k, 1) - 1) / (len(texts) - 1) if k is not None and len(texts) > 1 else 0.0,
            1.0 if k is not None and counts.get(k, 0) == top and top > 1 else 0.0,
            lc,
            lc - mean_logc,
            math.log1p(t.count("\n") + 1),
            1.0 if re.search(r"####|(?:^|\s)A:|(?i:answer:|the answer is)", t) else 0.0,
            1.0 if v is not None and v == int(v) else 0.0,
            1.0 if v is not None and v < 0 else 0.0,
            1.0 if v is not None else 0.0,
            1.0 if k is not None and k in qnums else 0.0,
            len(qnums & snums) / len(qnums) if qnums else 0.0,
            sum(1 for kind, arg in instr if satisfied(kind, arg, t)) / len(instr) if instr else 0.0,
            1.0 if instr else 0.0,
        ]
        out.append(f)
    return out


class FeatureTable:
    """Standardised feature vectors phi(x, y) for every candidate of every prompt the run knows,
    with a per-task-family copy of each feature."""

    def __init__(self, train_records, all_records, tasks):
        self.tasks = list(tasks)
        raw = {}
        for r in all_records:
            if r["id"] not in raw:
                raw[r["id"]] = response_features(r["prompt"], [c["text"] for c in r["candidates"]])
        train_ids = {r["id"] for r in train_records}
        rows = [f for pid, fs in raw.items() if pid in train_ids for f in fs]
        d = len(FEATURES)
        self.mean = [sum(row[i] for row in rows) / len(rows) for i in range(d)]
        self.std = [math.sqrt(sum((row[i] - self.mean[i]) ** 2 for row in rows) / len(rows)) or 1.0 for i in range(d)]
        self.dim = d * (1 + len(self.tasks))
        self.vectors, self.texts, self.correct, self.task = {}, {}, {}, {}
        for r in all_records:
            pid = r["id"]
            if pid in self.vectors:
                continue
            t = self.tasks.index(r["task"])
            vecs = []
            for f in raw[pid]:
                z = [(f[i] - self.mean[i]) / self.std[i] for i in range(d)]
                full = z + [0.0] * (d * len(self.tasks))
                full[d * (1 + t):d * (2 + t)] = z
                vecs.append(full)
            self.vectors[pid] = vecs
            self.texts[pid] = {}
            for i, c in enumerate(r["candidates"]):
                self.texts[pid].setdefault(c["text"], i)
            self.correct[pid] = [bool(c.get("correct")) for c in r["candidates"]]
            self.task[pid] = r["task"]


class StandInPolicy:
    """Log-linear re-ranker trained with DPO (beta) + nll_weight x NLL of the chosen response."""

    def __init__(self, table, beta=0.1, nll_weight=1.0, lr=0.5):
        self.table, self.beta, self.nll_weight, self.lr = table, beta, nll_weight, lr
        self.theta = [0.0] * table.dim

    def scores(self, pid):
        th = self.theta
        return [sum(a * b for a, b in zip(th, v)) for v in self.table.vectors[pid]]

    def loss(self, pairs, nll=True):
        """The mean training loss (DPO + NLL, as in step; nll=False: DPO only) on pairs, without a step:
        the loss a trainer reports on prediction-gain's batch after its step, or on probe-progress's probe."""
        total, n, cache = 0.0, 0, {}
        for p in pairs:
            ids = self.table.texts.get(p.prompt_id)
            if ids is None or p.chosen not in ids or p.rejected not in ids:
                raise KeyError("pair for an unknown prompt or response: %s" % p.prompt_id)
            c, r = ids[p.chosen], ids[p.rejected]
            if p.prompt_id not in cache:
                s = self.scores(p.prompt_id)
                m = max(s)
                cache[p.prompt_id] = (s, m + math.log(sum(math.exp(x - m) for x in s)))
            s, log_z = cache[p.prompt_id]
            z = self.beta * (s[c] - s[r])
            total += (math.log1p(math.exp(-z)) if z > -30 else -z) + (self.nll_weight * (log_z - s[c]) if nll else 0.0)
            n += 1
        return total / n if n else 0.0

    def step(self, pairs):
        """One SGD step on a mini-batch's pairs (objects with prompt_id, chosen, rejected); returns
        the mean loss before the step, which the trainer reports to laser (the bandit's reward)."""
        usable = []
        for p in pairs:
            ids = self.table.texts.get(p.prompt_id)
            if ids is None or p.chosen not in ids or p.rejected not in ids:
                raise KeyError("pair for an unknown prompt or response: %s" % p.prompt_id)
            usable.append((p.prompt_id, ids[p.chosen], ids[p.rejected]))
        if not usable:
            return 0.0
        dim = self.table.dim
        grad = [0.0] * dim
        total = 0.0
        cache = {}
        for pid, c, r in usable:
            if pid not in cache:
                s = self.scores(pid)
                m = max(s)
                log_z = m + math.log(sum(math.exp(x - m) for x in s))
                cache[pid] = (s, [math.exp(x - log_z) for x in s], log_z)
            s, probs, log_z = cache[pid]
            vecs = self.table.vectors[pid]
            # DPO against the uniform reference: the reference's log-ratios cancel within a prompt.
            z = self.beta * (s[c] - s[r])
            total += math.log1p(math.exp(-z)) if z > -30 else -z
            g = -self.beta / (1.0 + math.exp(z))
            vc, vr = vecs[c], vecs[r]
            for k in range(dim):
                grad[k] += g * (vc[k] - vr[k])
            # NLL of the chosen response among the prompt's responses.
            total += self.nll_weight * (log_z - s[c])
            for i, v in enumerate(vecs):
                w = self.nll_weight * (probs[i] - (1.0 if i == c else 0.0))
                if w:
                    for k in range(dim):
                        grad[k] += w * v[k]
        n = len(usable)
        for k in range(dim):
            self.theta[k] -= self.lr * grad[k] / n
        return total / n

    def accuracy(self, records):
        """Held-out accuracy overall and per task family: the top-scored response is correct (ties:
        the expected accuracy of a uniform pick among the top)."""
        per = {}
        for r in records:
            s = self.scores(r["id"])
            m = max(s)
            top = [i for i, x in enumerate(s) if x >= m - 1e-9]
            acc = sum(self.table.correct[r["id"]][i] for i in top) / len(top)
            per.setdefault(r["task"], []).append(acc)
        allv = [a for v in per.values() for a in v]
        return sum(allv) / len(allv), {t: sum(v) / len(v) for t, v in per.items()}
