"""Prompt templates (canonical, byte-exact) and the training-sample generator.

Canonical prompts are TEXT; their token ids are [BOS=1] + sp.encode(text) with the
project's tokenizer.model (no other special tokens). The model must continue the prompt
with ANSWER (a space and 5 digits). All templates are lines ending in "\n" except the
question, which ends the prompt without a trailing space.

Passkey (single needle), with n filler lines, a of them before the needle:
    PASSKEY_PREFIX + FILLER_LINE * a + PASSKEY_NEEDLE + FILLER_LINE * (n - a) + PASSKEY_QUESTION
    answer: PASSKEY_ANSWER
Multi-key ("several keys with values"), K needles at filler-line positions p_1 <= ... <= p_K:
    MK_PREFIX + FILLER_LINE * p_1 + MK_NEEDLE(k_1, v_1) + FILLER_LINE * (p_2 - p_1) + ...
      + MK_NEEDLE(k_K, v_K) + FILLER_LINE * (n - p_K) + MK_QUESTION(k_q)
    answer: MK_ANSWER(v_q)

Since no piece of the tokenizer contains "\n" (it is always the byte piece <0x0A>), the
token ids of such a text are the concatenation of the ids of its lines, which lets the
generator below build samples in token space; `selfcheck` verifies this equality.
"""
import numpy as np

PASSKEY_PREFIX = ("There is an important pass key hidden inside a lot of irrelevant text. "
                  "Find it and memorize it. I will quiz you about the pass key at the end.\n")
FILLER_LINE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n"
PASSKEY_NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key.\n"
PASSKEY_QUESTION = "What is the pass key? The pass key is"
PASSKEY_ANSWER = " {key}"

MK_PREFIX = ("Some keys are hidden inside a lot of irrelevant text, each with a value. "
             "Memorize them. I will ask for the value of one key at the end.\n")
MK_NEEDLE = "The value of key {key} is {value}.\n"
MK_QUESTION = "What is the value of key {key}? The value of key {key} is"
MK_ANSWER = " {value}"

BOS, EOS = 1, 2
ANSWER_WEIGHT = 50.0


def rand5(rng, n=None):
    """5-digit numbers 10000..99999."""
    return rng.integers(10000, 100000, size=n)


# ----------------------------------------------------------------------------- text level

def passkey_text(n, a, key):
    return (PASSKEY_PREFIX + FILLER_LINE * a + PASSKEY_NEEDLE.format(key=key)
            + FILLER_LINE * (n - a) + PASSKEY_QUESTION)


def mk_text(n, positions, keys, values, q):
    s = MK_PREFIX
    prev = 0
    for p, k, v in zip(positions, keys, values):  # positions non-decreasing
        s += FILLER_LINE * (p - prev) + MK_NEEDLE.format(key=k, value=v)
        prev = p
    return s + FILLER_LINE * (n - prev) + MK_QUESTION.format(key=keys[q])


class Tok:
    """Token-level pieces of the templates for one SentencePiece model."""

    def __init__(self, sp):
        self.sp = sp
        self.nl = sp.piece_to_id("<0x0A>")
        self._x = sp.encode("x\n")
        pieces = [sp.id_to_piece(i) for i in range(sp.vocab_size())]
        self.is_digit = np.array([p.replace("\u2581", "").isdigit() for p in pieces])
        self.pk_prefix = self.first(PASSKEY_PREFIX)
        self.mk_prefix = self.first(MK_PREFIX)
        self.filler = self.cont(FILLER_LINE)
        self.pk_question = self.cont(PASSKEY_QUESTION)

    def first(self, s):  # ids of s at the start of a text (dummy prefix applies)
        return np.array(self.sp.encode(s), dtype=np.int64)

    def cont(self, s):  # ids of s when it follows "\n"
        return np.array(self.sp.encode("x\n" + s)[len(self._x):], dtype=np.int64)

    def answer(self, key):
        # the answer follows "...is" on the same line; " 12345" -> "▁","1",.. (split digits)
        return np.array(self.sp.encode("is" + PASSKEY_ANSWER.format(key=key))[len(self.sp.encode("is")):], dtype=np.int64)


def _digit_runs_weight(tok, ids, zero_runs):
    """weights 1, with the first `zero_runs` runs of digit tokens set to 0."""
    w = np.ones(len(ids), dtype=np.float32)
    d = tok.is_digit[ids]
    run, i = 0, 0
    while i < len(ids) and run < zero_runs:
        if d[i]:
            j = i
            while j < len(ids) and d[j]:
                j += 1
            w[i:j] = 0
            run += 1
            i = j
        else:
            i += 1
    return w


# ----------------------------------------------------------------------------- token level

class Generator:
    """Builds rows of `L` token ids with per-target weights (w[i] weighs predicting ids[i])."""

    def __init__(self, tok, stream, mix=None):
        self.tok = tok
        self.stream = stream  # np.uint16 token stream: docs as [BOS] ids [EOS]
        self.mix = mix or dict(text=0.5, pk_rep=0.15, pk_real=0.10, mk_rep=0.10, mk_real=0.15)

    # -- pieces
    def real_window(self, rng, n):
        s = int(rng.integers(0, len(self.stream) - n - 1))
        return self.stream[s:s + n].astype(np.int64)

    def real_lines(self, rng, n):
        """About n tokens of corpus text cut at line boundaries (starts after a newline, ends
        with one), without document markers. May be shorter than n."""
        w = self.real_window(rng, n + 256)
        w = w[(w != BOS) & (w != EOS)]
        nl = np.flatnonzero(w == self.tok.nl)
        if len(nl) < 2:
            return w[:0], np.zeros(0, dtype=np.int64)
        start = nl[0] + 1
        ends = nl[nl < start + n] + 1
        if len(ends) == 0:
            return w[:0], np.zeros(0, dtype=np.int64)
        seg = w[start:ends[-1]]
        bounds = np.concatenate([[0], np.flatnonzero(seg == self.tok.nl) + 1])  # line starts
        return seg, bounds

    def filler(self, rng, budget, real):
        """Returns (ids, line_starts) of filler of at most `budget` tokens."""
        if real:
            seg, b = self.real_lines(rng, budget)
            if len(seg) > 0:
                return seg, b
        n = max(budget // len(self.tok.filler), 0)
        return np.tile(self.tok.filler, n), np.arange(n + 1) * len(self.tok.filler)

    # -- samples (without tail); return ids, weights
    def passkey(self, rng, T, real, depth=None, key=None):
        t = self.tok
        key = int(rand5(rng)) if key is None else key
        needle = t.cont(PASSKEY_NEEDLE.format(key=key))
        ans = t.answer(key)
        fixed = 1 + len(t.pk_prefix) + len(needle) + len(t.pk_question) + len(ans)
        fill, starts = self.filler(rng, T - fixed, real)
        depth = rng.random() if depth is None else depth
        cut = starts[int(round(depth * (len(starts) - 1)))]
        ids = np.concatenate([[BOS], t.pk_prefix, fill[:cut], needle, fill[cut:], t.pk_question, ans])
        w = np.concatenate([[0], np.ones(len(t.pk_prefix)), np.ones(cut), _digit_runs_weight(t, needle, 1),
                            np.ones(len(fill) - cut), np.ones(len(t.pk_question)), np.full(len(ans), ANSWER_WEIGHT)])
        return ids, w.astype(np.float32)

    def multikey(self, rng, T, real, K=None):
        t = self.tok
        if K is None:  # 2..8 keys, fewer when the sample is too short to hold them
            K = min(int(rng.integers(2, 9)), max(1, (T - 100) // 24))
        keys = rand5(rng, K)
        while len(set(keys.tolist())) < K:
            keys = rand5(rng, K)
        vals = rand5(rng, K)
        q = int(rng.integers(0, K))
        needles = [t.cont(MK_NEEDLE.format(key=k, value=v)) for k, v in zip(keys, vals)]
        question = t.cont(MK_QUESTION.format(key=keys[q]))
        ans = t.answer(int(vals[q]))
        fixed = 1 + len(t.mk_prefix) + sum(len(x) for x in needles) + len(question) + len(ans)
        fill, starts = self.filler(rng, T - fixed, real)
        pos = np.sort(rng.integers(0, len(starts), size=K))
        parts, ws, prev = [[BOS], t.mk_prefix], [[0], np.ones(len(t.mk_prefix))], 0
        for p, nd in zip(pos, needles):
            c = starts[p]
            parts += [fill[prev:c], nd]
            ws += [np.ones(c - prev), _digit_runs_weight(t, nd, 2)]
            prev = c
        parts += [fill[prev:], question, ans]
        ws += [np.ones(len(fill) - prev), _digit_runs_weight(t, question, 1), np.full(len(ans), ANSWER_WEIGHT)]
        return np.concatenate(parts).astype(np.int64), np.concatenate(ws).astype(np.float32)

    # -- rows
    def row(self, rng, L):
        kinds = list(self.mix)
        k = kinds[int(rng.choice(len(kinds), p=np.array([self.mix[x] for x in kinds]) / sum(self.mix.values())))]
        if k == "text":
            ids = np.concatenate([[BOS], self.real_window(rng, L - 1)])
            return ids, np.concatenate([[0], np.ones(L - 1)]).astype(np.float32), k
        T = int(L * rng.uniform(0.3, 1.0))
        if k.startswith("pk"):
            ids, w = self.passkey(rng, T, k.endswith("real"))
        else:
            ids, w = self.multikey(rng, T, k.endswith("real"))
        ids, w = ids[:L], w[:L]
        rest = L - len(ids)
        if rest > 0:  # pack: EOS, then BOS + corpus text
            tail = np.concatenate([[EOS], [BOS], self.real_window(rng, max(rest - 2, 0))])[:rest]
            tw = np.ones(rest, dtype=np.float32)
            ids, w = np.concatenate([ids, tail]), np.concatenate([w, tw])
        return ids, w, k

    def batch(self, seed, step, L, B):
        rng = np.random.default_rng([seed, step])
        ids = np.empty((B, L), dtype=np.int64)
        w = np.empty((B, L), dtype=np.float32)
        for b in range(B):
            ids[b], w[b], _ = self.row(rng, L)
        return ids, w


def selfcheck(tok, n_trials=20, seed=0):
    """Token-space samples on repetitive filler == sp.encode of the canonical text."""
    rng = np.random.default_rng(seed)
    g = Generator(tok, np.zeros(10, dtype=np.uint16))
    sp = tok.sp
    for _ in range(n_trials):
        T = int(rng.integers(200, 3000))
        key = int(rand5(rng))
        depth = float(rng.random())
        ids, _ = g.passkey(rng, T, False, depth=depth, key=key)
        n = (T - (1 + len(tok.pk_prefix) + len(tok.cont(PASSKEY_NEEDLE.format(key=key))) + len(tok.pk_question)
                  + len(tok.answer(key)))) // len(tok.filler)
        a = int(round(depth * n))
        ref = [BOS] + sp.encode(passkey_text(n, a, key) + PASSKEY_ANSWER.format(key=key))
        assert ids.tolist() == ref, "passkey token/text mismatch"
    # multikey: compare with the text builder using the same draws
    for _ in range(n_trials):
        K = int(rng.integers(2, 9))
        keys = rand5(rng, K).tolist(); vals = rand5(rng, K).tolist(); q = int(rng.integers(0, K))
        n = int(rng.integers(0, 40)); pos = sorted(rng.integers(0, n + 1, size=K).tolist())
        text = mk_text(n, pos, keys, vals, q) + MK_ANSWER.format(value=vals[q])
        parts, prev = [[BOS], tok.mk_prefix], 0
        for p, k, v in zip(pos, keys, vals):
            parts += [np.tile(tok.filler, p - prev), tok.cont(MK_NEEDLE.format(key=k, value=v))]
            prev = p
        parts += [np.tile(tok.filler, n - prev), tok.cont(MK_QUESTION.format(key=keys[q])), tok.answer(vals[q])]
        assert np.concatenate(parts).astype(np.int64).tolist() == [BOS] + sp.encode(text), "multikey mismatch"
    return True
