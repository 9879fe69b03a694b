#!/usr/bin/env python3
"""Generate text with a Hugging Face checkpoint, decoding with Adamas sparse attention.

    PYTHONPATH=build-torch/python python3 python/examples/generate.py \\
        --model models/adamas-tiny-8k --prompt "The passkey is 71432. Remember it." \\
        --policy adamas:budget=64 --max-new-tokens 64

The model loads with attn_implementation="adamas" and generates with an AdamasCache: the prompt is
prefilled with dense attention (SDPA), every decode step attends to the `budget` keys the
Adamas estimate ranks highest (layers below the policy's dense_layers, default 2, attend densely).
--policy full decodes densely through the same paged cache.
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

import adamas

DTYPES = {"auto": "auto", "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class FirstTokenClock(LogitsProcessor):
    """Leaves the scores alone; notes when the first (prefill) logits arrive, to time decoding."""

    def __init__(self):
        self.first = None

    def __call__(self, input_ids, scores):
        if self.first is None:
            self.first = time.perf_counter()
        return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", required=True, help="checkpoint directory or hub id (e.g. models/adamas-tiny-8k)"
    )
    ap.add_argument("--prompt", required=True)
    ap.add_argument(
        "--policy", default="adamas:budget=256", help="adamas:budget=N,... or full (default %(default)s)"
    )
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--page-size", type=int, default=16)
    ap.add_argument("--device", default="auto", help="auto (cuda when there is one), cpu or cuda")
    ap.add_argument("--dtype", choices=DTYPES, default="auto", help="default: the checkpoint's")
    a = ap.parse_args()

    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    tokenizer = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=DTYPES[a.dtype], attn_implementation="adamas")
    model = model.to(device).eval()
    inputs = tokenizer(a.prompt, return_tensors="pt").to(device)
    cache = adamas.AdamasCache(policy=a.policy, page_size=a.page_size, config=model.config)
    clock = FirstTokenClock()

    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            past_key_values=cache,
            max_new_tokens=a.max_new_tokens,
            do_sample=False,
            logits_processor=LogitsProcessorList([clock]),
            pad_token_id=tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        )
    if device == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()

    new = out[0, inputs["input_ids"].shape[1] :]
    print(tokenizer.decode(new, skip_special_tokens=True))
    decode_steps = len(new) - 1  # the first new token comes from the prefill
    decode_s = end - clock.first
    print(
        f"\n[{device}, {model.dtype}, {a.policy}] prompt {inputs['input_ids'].shape[1]} tokens, "
        f"{len(new)} new in {end - start:.2f} s: prefill + first token {clock.first - start:.3f} s, "
        + (f"decode {decode_steps / decode_s:.1f} tokens/s" if decode_steps > 0 else "no decode step")
    )
    print(cache)


if __name__ == "__main__":
    main()
