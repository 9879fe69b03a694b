#!/usr/bin/env python3
"""Evaluate an exported model with transformers' LlamaForCausalLM (full attention):
passkey accuracy by context length and depth, multi-key accuracy, passkey on held-out
corpus filler, and held-out perplexity.

  python3 tools/model/check_passkey.py --model models/adamas-tiny-8k \
      --heldout .data/carry/heldout.u16.xz --json results.json

Prompts are the canonical texts of tasks.py, tokenized as [BOS] + sp.encode(text) with the
model's tokenizer.model. A trial counts as retrieved when greedy decoding continues the
prompt with exactly the answer tokens (" " + 5 digits); this is checked in one forward pass
with the answer teacher-forced (argmax at every answer position == answer token), which is
equivalent to greedy decoding of those tokens. A few prompts are also run through
model.generate() and printed.
"""
import argparse, json, lzma, math, os, sys, time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sentencepiece as spm  # noqa: E402
import tasks  # noqa: E402

T0 = time.time()


def log(*a):
    print("[%6.1fs]" % (time.time() - T0), *a, flush=True)


class Runner:
    def __init__(self, a):
        self.dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.sp = spm.SentencePieceProcessor(model_file=os.path.join(a.model, "tokenizer.model"))
        if a.backend == "hf":
            from transformers import LlamaForCausalLM
            self.m = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16 if self.dev == "cuda" else torch.float32,
                                                      attn_implementation="sdpa").to(self.dev).eval()
            log("loaded %s with transformers LlamaForCausalLM (%s, attn %s)" % (
                a.model, self.m.dtype, self.m.config._attn_implementation))
        else:  # CPU smoke test without transformers: train.py checkpoint
            from model import Config, LlamaLM
            from train import load_ckpt
            sd, meta = load_ckpt(a.ckpt)
            self.m = LlamaLM(Config(**meta["config"]))
            self.m.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
            self.m.eval()
        self.hf = a.backend == "hf"

    @torch.no_grad()
    def logits(self, ids, keep=0):
        x = torch.as_tensor(ids, device=self.dev)
        if self.hf:
            out = self.m(input_ids=x, logits_to_keep=keep, use_cache=False).logits
        else:
            out = self.m(x)
            out = out[:, -keep:] if keep else out
        return out.float()


def prompt_ids(sp, text):
    return [tasks.BOS] + sp.encode(text)


def passkey_case(sp, tok, L, depth, key):
    """Largest number of filler lines n with len(prompt) + len(answer) <= L."""
    ans = tok.answer(key).tolist()
    base = len(prompt_ids(sp, tasks.passkey_text(0, 0, key))) + len(ans)
    n = (L - base) // len(tok.filler)
    a = int(round(depth * n))
    text = tasks.passkey_text(n, a, key)
    ids = prompt_ids(sp, text)
    assert len(ids) + len(ans) <= L
    return text, ids, ans


def check_batch(r, seqs, answers):
    """seqs: list of equal-length prompt id lists; answers: list of equal-length answer lists."""
    k = len(answers[0])
    full = [s + a[:-1] for s, a in zip(seqs, answers)]
    lg = r.logits(full, keep=k)
    pred = lg.argmax(-1).cpu()
    return (pred == torch.tensor(answers)).all(dim=1).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--backend", default="hf", choices=["hf", "mine"])
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--heldout", default=".data/carry/heldout.u16.xz")
    ap.add_argument("--json", default=None)
    ap.add_argument("--lengths", default="1024,2048,4096,8192")
    ap.add_argument("--depths", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--mk-keys", default="4,8")
    ap.add_argument("--mk-trials", type=int, default=50)
    ap.add_argument("--real-trials", type=int, default=10)
    ap.add_argument("--ppl-lens", default="8192,2048")
    ap.add_argument("--ppl-max-tokens", type=int, default=2000000)
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--seed", type=int, default=20240601)
    a = ap.parse_args()
    r = Runner(a)
    sp = r.sp
    tok = tasks.Tok(sp)
    tasks.selfcheck(tok, 10)
    lengths = [int(x) for x in a.lengths.split(",")]
    depths = [float(x) for x in a.depths.split(",")]
    res = {"model": a.model, "backend": a.backend}

    # -- HF tokenizer agreement (informational)
    if a.backend == "hf":
        try:
            from transformers import AutoTokenizer
            ht = AutoTokenizer.from_pretrained(a.model)
            texts = [tasks.passkey_text(3, 1, 12345), tasks.mk_text(4, [0, 2], [11111, 22222], [33333, 44444], 1),
                     "int main(void)\n{\n\treturn 0;\n}\n", "    indented  two  spaces\n\nEnd."]
            same = all(ht.encode(t) == prompt_ids(sp, t) for t in texts)
            res["hf_tokenizer_matches_sentencepiece"] = bool(same)
            log("AutoTokenizer(%s) ids == [BOS]+sentencepiece ids on test texts: %s" % (type(ht).__name__, same))
            with lzma.open(a.heldout) as f:  # also on 300 held-out snippets (decoded token windows)
                hs = np.frombuffer(f.read(), dtype="<u2")
            rng = np.random.default_rng(5)
            nsame, bad = 0, []
            for _ in range(300):
                s0 = int(rng.integers(0, len(hs) - 600))
                t = sp.decode([x for x in hs[s0:s0 + 512].tolist() if x > 2])
                ok_ = ht.encode(t) == prompt_ids(sp, t)
                nsame += ok_
                if not ok_ and len(bad) < 3:
                    h_, s_ = ht.encode(t), prompt_ids(sp, t)
                    i = next((k for k in range(min(len(h_), len(s_))) if h_[k] != s_[k]), min(len(h_), len(s_)))
                    bad.append({"hf": [ht.convert_ids_to_tokens(x) for x in h_[max(0, i - 2):i + 4]],
                                "spm": [sp.id_to_piece(x) for x in s_[max(0, i - 2):i + 4]]})
            res["hf_tokenizer_heldout_snippets_equal"] = "%d/300" % nsame
            res["hf_tokenizer_first_mismatches"] = bad
            log("AutoTokenizer == sentencepiece on held-out snippets: %d/300; first mismatches: %s" % (nsame, bad))
            if not same:
                log("  hf :", ht.encode(texts[0])[:20], "\n  spm:", prompt_ids(sp, texts[0])[:20])
        except Exception as e:  # noqa: BLE001
            res["hf_tokenizer_matches_sentencepiece"] = "error: %s" % str(e)[:200]
            log("AutoTokenizer failed:", str(e)[:300])

    # -- passkey, repetitive filler, by length x depth
    table = {}
    for L in lengths:
        per_b = max(1, a.batch_tokens // L)
        for d in depths:
            rng = np.random.default_rng([a.seed, L, int(round(d * 100))])
            keys = tasks.rand5(rng, a.trials).tolist()
            cases = [passkey_case(sp, tok, L, d, k) for k in keys]
            ok = []
            for i in range(0, len(cases), per_b):
                c = cases[i:i + per_b]
                ok += check_batch(r, [x[1] for x in c], [x[2] for x in c])
            table.setdefault(str(L), {})["%d" % round(d * 100)] = sum(ok) / len(ok)
        log("passkey L=%d: %s" % (L, " ".join("%s:%.2f" % kv for kv in table[str(L)].items())))
    res["passkey"] = {"trials_per_cell": a.trials, "acc": table,
                      "prompt_tokens": {str(L): len(passkey_case(sp, tok, L, 0.5, 12345)[1]) for L in lengths}}

    # -- generate() demo
    demos = []
    for L in lengths:
        text, ids, ans = passkey_case(sp, tok, L, 0.5, 27182)
        if r.hf:
            out = r.m.generate(torch.tensor([ids], device=r.dev), max_new_tokens=8, do_sample=False)
            cont = sp.decode(out[0, len(ids):].tolist())
            demos.append({"len": L, "prompt_tokens": len(ids), "key": 27182, "generated": cont})
            log("generate L=%d (prompt %d tokens, key 27182, depth 50%%): %r" % (L, len(ids), cont))
    res["generate_demo"] = demos

    # -- multi-key
    mk = {}
    for K in [int(x) for x in a.mk_keys.split(",")]:
        for L in lengths:
            rng = np.random.default_rng([a.seed, L, K, 7])
            cases = []
            for _ in range(a.mk_trials):
                keys = tasks.rand5(rng, K).tolist()
                while len(set(keys)) < K:
                    keys = tasks.rand5(rng, K).tolist()
                vals = tasks.rand5(rng, K).tolist()
                q = int(rng.integers(0, K))
                ans = tok.answer(vals[q]).tolist()
                base = len(prompt_ids(sp, tasks.mk_text(0, [0] * K, keys, vals, q))) + len(ans)
                n = (L - base) // len(tok.filler)
                pos = sorted(rng.integers(0, n + 1, size=K).tolist())
                ids = prompt_ids(sp, tasks.mk_text(n, pos, keys, vals, q))
                assert len(ids) + len(ans) <= L
                cases.append((ids, ans))
            ok = []
            for c in cases:  # lengths equal per K, L but keep it simple
                ok += check_batch(r, [c[0]], [c[1]])
            mk.setdefault("K=%d" % K, {})[str(L)] = sum(ok) / len(ok)
        log("multi-key K=%d: %s" % (K, mk["K=%d" % K]))
    res["multikey"] = {"trials_per_cell": a.mk_trials, "acc": mk}

    # -- passkey on held-out corpus filler (token-space generator; same prefix/needle/question)
    with lzma.open(a.heldout) as f:
        held = np.frombuffer(f.read(), dtype="<u2")
    g = tasks.Generator(tok, held)
    real = {}
    for L in lengths[-1:]:
        for d in depths:
            rng = np.random.default_rng([a.seed, L, int(round(d * 100)), 3])
            ok = []
            for _ in range(a.real_trials):
                ids, w = g.passkey(rng, L, True, depth=d)
                na = int((w == tasks.ANSWER_WEIGHT).sum())
                ok += check_batch(r, [ids[:-na].tolist()], [ids[-na:].tolist()])
            real["%d" % round(d * 100)] = sum(ok) / len(ok)
        log("passkey on held-out corpus filler L=%d: %s" % (L, " ".join("%s:%.2f" % kv for kv in real.items())))
    res["passkey_corpus_filler"] = {"len": lengths[-1], "trials_per_cell": a.real_trials, "acc": real}

    # -- held-out perplexity: non-overlapping windows [BOS] + (W-1) tokens of the held-out stream
    ppl = {}
    for W in [int(x) for x in a.ppl_lens.split(",")]:
        n = min(len(held), a.ppl_max_tokens) // (W - 1)
        nll, cnt, nbytes = 0.0, 0, 0
        per_b = max(1, a.batch_tokens // W)
        for i in range(0, n, per_b):
            rows = []
            for j in range(i, min(n, i + per_b)):
                seg = held[j * (W - 1):(j + 1) * (W - 1)].astype(np.int64)
                rows.append([tasks.BOS] + seg.tolist())
                nbytes += len(sp.decode([t for t in seg.tolist() if t > 2]).encode())
            x = torch.tensor(rows, device=r.dev)
            lg = r.logits(rows)
            ce = F.cross_entropy(lg[:, :-1].reshape(-1, lg.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
            nll += ce.item()
            cnt += x[:, 1:].numel()
        ppl[str(W)] = {"tokens": cnt, "ppl": math.exp(nll / cnt), "nll": nll / cnt, "bits_per_byte": nll / nbytes / math.log(2)}
        log("held-out ppl, %d-token windows: %.3f over %d tokens (%.3f bits/byte)" % (W, ppl[str(W)]["ppl"], cnt, ppl[str(W)]["bits_per_byte"]))
    res["heldout"] = ppl
    res["eval_seconds"] = time.time() - T0

    # -- markdown summary
    print("\n| context | " + " | ".join("%d%%" % round(d * 100) for d in depths) + " | mean |")
    print("|---|" + "---|" * (len(depths) + 1))
    for L in lengths:
        row = table[str(L)]
        print("| %d | " % L + " | ".join("%.2f" % row["%d" % round(d * 100)] for d in depths) + " | %.3f |" % np.mean(list(row.values())))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
