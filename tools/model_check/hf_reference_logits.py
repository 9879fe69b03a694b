#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers for the checkpoints of make_checkpoints.py
(issue 4, item 6). Needs torch + transformers (tested with torch 2.11, transformers 5.17) and
numpy; runs on CPU by default (exact fp32; tiny models), --device cuda works too (TF32 is off).

  python3 tools/model_check/make_checkpoints.py --out /tmp/model_check
  python3 tools/model_check/hf_reference_logits.py --checkpoints /tmp/model_check \
      --out tests/model/data

For each variant it loads DIR/<variant> with LlamaForCausalLM / Qwen2ForCausalLM (float32,
attn_implementation="eager"), runs the fixed token-id prompts of prompts.json and writes
<out>/<variant>.hf.safetensors:
  prompt{i}.ids             I64 [n]      the prompt
  prompt{i}.prefill_logits  F32 [n, V]   logits at every prompt position
  prompt{i}.generated       I64 [32]     greedy tokens: generated[0] = argmax(prefill[-1]),
                                         generated[k+1] = argmax(decode_logits[k])
  prompt{i}.decode_logits   F32 [32, V]  logits after feeding generated[k] through the KV cache
  __metadata__: source, versions, model_crc32 (hash of the model.safetensors used),
                tokenizer_cases (JSON: texts and the ids HF's tokenizers library gives them)
tests/model/peer_check_test.cc compares the C++ runtime with these files.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

# Awkward texts for the tokenizer comparison (tests/model/tokenizer_test.cc reads them back).
TOKENIZER_TEXTS = [
    "Hello, world!",
    "  multiple   spaces\t\ttabs\n\n\nnewlines  ",
    "digits 1234567 3.14159 1,000,000 and 42nd",
    "Unicode: café naïve Ünïcödé — “quotes” 日本語のテキスト 🤖🚀 emoji",
    "contractions: I'm you're we've they'll she'd IT'S O'Neil",
    "mixed\r\nCRLF\rCR \n \n  end",
    "decomposed e\u0301 vs é, ﬁ ligature, Å",
    "special <|end_of_text|> inside <|begin_of_text|>text",
    "",
]


def run_variant(ckpt, device, prompts_file=None):
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    cls = {"llama": transformers.LlamaForCausalLM,
           "qwen2": transformers.Qwen2ForCausalLM,
           "mistral": transformers.MistralForCausalLM}[cfg["model_type"]]
    model = cls.from_pretrained(ckpt, dtype=torch.float32, attn_implementation="eager")
    model.to(device).eval()
    spec = json.load(open(prompts_file or os.path.join(ckpt, "prompts.json")))
    return run_prompts(model, spec, device)


def run_prompts(model, spec, device):
    """Logits of a loaded model on spec's prompts: the prefill, then decode_steps greedy steps
    through the KV cache (the file layout of the module docstring)."""
    steps, tensors = spec["decode_steps"], {}
    with torch.no_grad():
        for i, prompt in enumerate(spec["prompts"]):
            out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
            prefill = out.logits[0].float().cpu().numpy()
            past, last = out.past_key_values, out.logits[0, -1]
            gen, dec = [], []
            for _ in range(steps):
                nxt = int(torch.argmax(last))
                gen.append(nxt)
                out = model(input_ids=torch.tensor([[nxt]], device=device),
                            past_key_values=past, use_cache=True)
                past, last = out.past_key_values, out.logits[0, -1]
                dec.append(last.float().cpu().numpy())
            tensors["prompt%d.ids" % i] = (np.array(prompt), "I64")
            tensors["prompt%d.prefill_logits" % i] = (prefill, "F32")
            tensors["prompt%d.generated" % i] = (np.array(gen), "I64")
            tensors["prompt%d.decode_logits" % i] = (np.stack(dec), "F32")
    return tensors


def tokenizer_cases(ckpt):
    if not os.path.exists(os.path.join(ckpt, "tokenizer.json")):
        return []  # a SentencePiece model (tokenizer.model): nothing to compare here
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(ckpt, "tokenizer.json"))
    return [dict(text=t, ids=tok.encode(t, add_special_tokens=False).ids,
                 ids_with_special=tok.encode(t, add_special_tokens=True).ids)
            for t in TOKENIZER_TEXTS]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoints", required=True, help="output dir of make_checkpoints.py")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                  "tests", "model", "data"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--variants", default="llama_mha,llama_gqa,qwen2_bias")
    ap.add_argument("--prompts", default=None,
                    help="prompts.json to use instead of CHECKPOINT/prompts.json (e.g. for the "
                         "shipped model: tests/model/data/adamas-tiny-8k.prompts.json)")
    a = ap.parse_args()
    # Exact fp32 matrix products on a GPU (no TF32), both the old and the new switch.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    except Exception:
        pass
    os.makedirs(a.out, exist_ok=True)
    for name in a.variants.split(","):
        ckpt = os.path.join(a.checkpoints, name)
        tensors = run_variant(ckpt, a.device, a.prompts)
        meta = {"source": "transformers %s, torch %s, %s, fp32 eager" % (
                    transformers.__version__, torch.__version__, a.device),
                "model_crc32": st_io.crc32(os.path.join(ckpt, "model.safetensors")),
                "tokenizer_cases": json.dumps(tokenizer_cases(ckpt), ensure_ascii=False)}
        path = os.path.join(a.out, name + ".hf.safetensors")
        st_io.write(path, tensors, meta)
        print("wrote", path)


if __name__ == "__main__":
    main()
