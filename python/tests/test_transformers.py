"""AdamasCache + attn_implementation="adamas" inside transformers' generate(), against SDPA with a
DynamicCache, on tiny random-weight Llama, Mistral and Qwen2 models.

    PYTHONPATH=build-torch/python python3 -m unittest discover -s python/tests -v

With a budget larger than every sequence the Adamas path is dense attention over the paged
cache, so greedy tokens and logits must match SDPA up to summation order and K/V storage:
logits within LOGITS_RTOL x max |logits| (fp32 on the CPU: K/V stored in fp32; fp32 on CUDA:
K/V stored in float16; bf16 on CUDA: both paths round to bf16 at every layer). Where greedy
decoding meets a near-tie (the reference's top-2 margin within twice the tolerance) the
sequences may part; they are compared up to there.
"""

from __future__ import annotations

import importlib.util
import unittest

SKIP_REASON = ""
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
    SKIP_REASON = "torch or transformers is not installed"
else:
    import torch

    try:
        import adamas
        import transformers
    except ImportError as e:
        SKIP_REASON = f"the adamas package or its operator library is missing: {e}"
    else:
        if not hasattr(adamas, "AdamasCache"):
            SKIP_REASON = "adamas was imported without its transformers integration"

requires_transformers = unittest.skipUnless(not SKIP_REASON, SKIP_REASON)

NEW_TOKENS = 20
PAD = 0
LOGITS_RTOL = {"cpu-float32": 1e-4, "cuda-float32": 5e-3, "cuda-bfloat16": 3e-2}


def tiny_config(family: str):
    common = dict(
        vocab_size=1000,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=4096,
        pad_token_id=PAD,
        bos_token_id=1,
        eos_token_id=2,
    )
    if family == "llama":
        return transformers.LlamaConfig(**common)
    if family == "mistral":
        return transformers.MistralConfig(**common)
    return transformers.Qwen2Config(**common)


def settings():
    """(device, dtype) pairs to run: the GPU in bfloat16 and float32 when there is one, else the CPU."""
    if torch.cuda.is_available():
        return [("cuda", torch.bfloat16), ("cuda", torch.float32)]
    return [("cpu", torch.float32)]


def build_model(family, device, dtype, qk_std=0.08):
    torch.manual_seed(0)
    config = tiny_config(family)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    # Larger weights than the default init, so that attention is far from uniform and the
    # logits have margins (a near-uniform random model makes every greedy step a near-tie);
    # larger still in q_proj and k_proj for attention concentrated on a few keys, as trained
    # models' is (what makes a sparse budget work).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, qk_std if name.endswith(("q_proj.weight", "k_proj.weight")) else 0.08)
    return model.to(device=device, dtype=dtype).eval()


def prompts(batch, device, lengths=(48, 31)):
    """Random prompts, left-padded to the longest."""
    g = torch.Generator().manual_seed(batch)
    lengths = lengths[:batch]
    width = max(lengths)
    ids = torch.full((batch, width), PAD, dtype=torch.long)
    mask = torch.zeros(batch, width, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, width - n :] = torch.randint(3, 1000, (n,), generator=g)
        mask[b, width - n :] = 1
    return ids.to(device), mask.to(device)


def generate(model, attn, ids, mask, cache=None, new_tokens=NEW_TOKENS):
    model.set_attn_implementation(attn)
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=PAD,
        past_key_values=cache,
        return_dict_in_generate=True,
        output_logits=True,
    )
    return out.sequences[:, ids.shape[1] :], torch.stack(out.logits, dim=1).float()  # [B, steps, vocab]


@requires_transformers
class GenerateMatchesSdpaTest(unittest.TestCase):
    def compare(self, ref_tokens, ref_logits, tokens, logits, rtol):
        tol = rtol * ref_logits.abs().max().item()
        for b in range(ref_tokens.shape[0]):
            for step in range(ref_tokens.shape[1]):
                err = (logits[b, step] - ref_logits[b, step]).abs().max().item()
                self.assertLessEqual(err, tol, f"sequence {b}, step {step}: logits differ by {err:.3g}")
                if tokens[b, step] != ref_tokens[b, step]:
                    top2 = ref_logits[b, step].topk(2).values
                    margin = (top2[0] - top2[1]).item()
                    self.assertLessEqual(
                        margin, 2 * tol, f"sequence {b}, step {step}: tokens part at margin {margin}"
                    )
                    break  # the sequences differ from here on: nothing left to compare

    def test_dense_budget_matches_sdpa(self):
        for family in ("llama", "mistral", "qwen2"):
            for device, dtype in settings():
                model = build_model(family, device, dtype)
                rtol = LOGITS_RTOL[f"{device}-{str(dtype).removeprefix('torch.')}"]
                for batch in (1, 2):
                    with self.subTest(family=family, device=device, dtype=dtype, batch=batch):
                        ids, mask = prompts(batch, device)
                        ref_tokens, ref_logits = generate(model, "sdpa", ids, mask)
                        cache = adamas.AdamasCache(policy="adamas:budget=100000", config=model.config)
                        tokens, logits = generate(model, "adamas", ids, mask, cache)
                        self.compare(ref_tokens, ref_logits, tokens, logits, rtol)
                        # The padded length the model saw; each sequence stores its real tokens only.
                        self.assertEqual(cache.get_seq_length(), ids.shape[1] + NEW_TOKENS - 1)
                        real = mask.sum(dim=1).tolist()
                        self.assertEqual(cache.stats()["lengths"], [n + NEW_TOKENS - 1 for n in real])

    def test_small_budget_differs_a_little(self):
        device, dtype = settings()[0]
        model = build_model("llama", device, dtype, qk_std=0.15)
        ids, mask = prompts(2, device, lengths=(300, 200))
        _, dense = generate(model, "adamas", ids, mask, adamas.AdamasCache(policy="adamas:budget=100000"), 4)
        sparse_cache = adamas.AdamasCache(policy="adamas:budget=64,dense_layers=0")
        _, sparse = generate(model, "adamas", ids, mask, sparse_cache, 4)
        self.assertTrue(torch.isfinite(sparse).all())
        # Logits 0 come from the prefill (dense either way), so both feed the same token to the
        # first decode step, whose logits 1 attend to 64 of the 200-300 tokens in every layer.
        self.assertTrue(torch.equal(sparse[:, 0], dense[:, 0]))
        self.assertFalse(torch.equal(sparse[:, 1], dense[:, 1]), "a budget of 64 changed nothing")
        rel = ((sparse[:, 1] - dense[:, 1]).norm() / dense[:, 1].norm()).item()
        self.assertLess(
            rel, 0.5, f"budget 64 moved the first decode step's logits by {rel:.2f} (relative L2)"
        )


@requires_transformers
class CacheBookkeepingTest(unittest.TestCase):
    def test_crop_reset_and_stats(self):
        device, dtype = settings()[0]
        model = build_model("llama", device, dtype)
        ids, mask = prompts(2, device)
        cache = adamas.AdamasCache(policy="adamas:budget=32", page_size=13)
        generate(model, "adamas", ids, mask, cache, new_tokens=6)
        seen, lengths = cache.get_seq_length(), cache.stats()["lengths"]
        self.assertEqual(cache.get_mask_sizes(1, 0), (seen + 1, 0))
        cache.crop(-4)
        self.assertEqual(cache.get_seq_length(), seen - 4)
        self.assertEqual(cache.stats()["lengths"], [n - 4 for n in lengths])
        pages = cache.stats()["pages_used"]
        self.assertEqual(pages, sum(-(-(n - 4) // 13) for n in lengths))
        self.assertIn("AdamasCache(policy='adamas:budget=32'", repr(cache))
        cache.reset()
        self.assertEqual((cache.get_seq_length(), cache.stats()["pages_used"]), (0, 0))
        with self.assertRaises(NotImplementedError):
            cache.reorder_cache(torch.tensor([1, 0]))

    def test_wrong_attention_implementation_is_reported(self):
        device, dtype = settings()[0]
        model = build_model("llama", device, dtype)
        ids, mask = prompts(1, device)
        with self.assertRaisesRegex(RuntimeError, "attn_implementation='adamas'"):
            generate(model, "sdpa", ids, mask, adamas.AdamasCache(), new_tokens=3)

    def test_bad_policy(self):
        with self.assertRaisesRegex(ValueError, "budget"):
            adamas.AdamasCache(policy="adamas:budget=0")
        with self.assertRaisesRegex(ValueError, "oracle"):
            adamas.AdamasCache(policy="oracle")


if __name__ == "__main__":
    unittest.main()
