"""The shipped model (models/adamas-tiny-8k) retrieves the passkey through transformers'
generate() with attn_implementation="adamas" and AdamasCache(policy="adamas:budget=64"), on the
GPU: greedy decoding of the answer tokens, prompts of the training template (tools/model/tasks.py)
at 4K and 8K tokens, needle depths 0.1 .. 0.9, seed 777 (fixed before any run). SDPA with a
DynamicCache runs the same prompts; the Adamas route must retrieve every passkey SDPA retrieves.

    PYTHONPATH=build-torch/python python3 -m unittest python/tests/test_passkey.py -v
"""

from __future__ import annotations

import importlib.util
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "adamas-tiny-8k")

SKIP_REASON = ""
for module in ("torch", "transformers", "sentencepiece", "numpy"):
    if importlib.util.find_spec(module) is None:
        SKIP_REASON = f"{module} is not installed"
        break
if not SKIP_REASON:
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        SKIP_REASON = "no CUDA device (8K prefills on the CPU take too long for the suite)"
    else:
        try:
            import adamas
            import sentencepiece as spm
            from transformers import AutoModelForCausalLM, DynamicCache

            sys.path.insert(0, os.path.join(ROOT, "tools", "model"))
            import tasks
        except ImportError as e:
            SKIP_REASON = f"cannot import what the test needs: {e}"

LENGTHS = (4096, 8192)
DEPTHS = (0.1, 0.3, 0.5, 0.7, 0.9)
SEED = 777
BUDGET = 64


def _prompt(sp, tok, length, depth, key):
    """The training template with as many filler lines as fit `length` tokens (check_passkey.py)."""
    answer = tok.answer(key).tolist()
    base = 1 + len(sp.encode(tasks.passkey_text(0, 0, key))) + len(answer)
    n = (length - base) // len(tok.filler)
    ids = [tasks.BOS] + sp.encode(tasks.passkey_text(n, int(round(depth * n)), key))
    return ids, answer


@unittest.skipUnless(not SKIP_REASON, SKIP_REASON)
class PasskeyThroughGenerate(unittest.TestCase):
    def test_budget_64_retrieves_what_sdpa_retrieves(self):
        sp = spm.SentencePieceProcessor(model_file=os.path.join(MODEL, "tokenizer.model"))
        tok = tasks.Tok(sp)
        models = {
            name: AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.bfloat16, attn_implementation=name)
            .cuda()
            .eval()
            for name in ("sdpa", "adamas")
        }
        rng = np.random.default_rng(SEED)
        hits = {"sdpa": 0, "adamas": 0}
        trials = 0
        for length in LENGTHS:
            for depth in DEPTHS:
                key = int(tasks.rand5(rng))
                ids, answer = _prompt(sp, tok, length, depth, key)
                x = torch.tensor([ids], device="cuda")
                got = {}
                for name, model in models.items():
                    cache = (
                        adamas.AdamasCache(policy=f"adamas:budget={BUDGET}")
                        if name == "adamas"
                        else DynamicCache()
                    )
                    with torch.no_grad():
                        out = model.generate(
                            x,
                            attention_mask=torch.ones_like(x),
                            max_new_tokens=len(answer),
                            do_sample=False,
                            past_key_values=cache,
                            pad_token_id=0,
                        )
                    got[name] = out[0, len(ids) :].tolist() == answer
                    hits[name] += got[name]
                trials += 1
                print(f"passkey {length} tokens depth {depth}: sdpa {got['sdpa']} adamas {got['adamas']}")
                if got["sdpa"]:
                    self.assertTrue(got["adamas"], f"budget {BUDGET} missed the passkey at {length}, depth {depth}")
        print(f"passkey accuracy over {trials} prompts: sdpa {hits['sdpa'] / trials:.2f}, "
              f"adamas budget {BUDGET} {hits['adamas'] / trials:.2f}")
        self.assertGreater(hits["sdpa"], trials // 2, "the model itself should retrieve most passkeys")


if __name__ == "__main__":
    unittest.main()
