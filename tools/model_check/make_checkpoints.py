#!/usr/bin/env python3
"""Writes small random-weight checkpoints in Hugging Face format for the peer check of the C++
runtime against transformers (issue 4, item 6). numpy + json only (Debian: python3-numpy).

  /usr/bin/python3 tools/model_check/make_checkpoints.py --out DIR [--numpy-reference]

Per variant, DIR/<variant>/ gets config.json, model.safetensors, tokenizer.json (byte-level BPE
trained here on a fixed text), generation_config.json and prompts.json (the fixed token-id prompts
of the check). Everything is deterministic (numpy's legacy RandomState, fixed seeds), so the same
bytes come out on every machine: the reference logits carry the CRC-32 of model.safetensors.
--numpy-reference also writes DIR/<variant>/reference.numpy.safetensors from numpy_forward.py.

Variants (tiny, but each exercises a distinct path of the loader and the forward pass):
  llama_mha    LlamaForCausalLM, MHA (2 heads x 128), bf16, untied lm_head, GPT-2 split pattern
  llama_gqa    LlamaForCausalLM, GQA 4:2 (64), f16, tied, llama3 RoPE scaling, Llama-3 pattern
  qwen2_bias   Qwen2ForCausalLM, GQA 2:1 (64), f32, tied, q/k/v bias, linear RoPE scaling,
               Qwen2 pattern + NFC
"""
import argparse
import collections
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

DECODE_STEPS = 32
VOCAB = 512
PAT_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
              r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PAT_QWEN2 = PAT_LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

VARIANTS = {
    "llama_mha": dict(
        config=dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=256,
                    intermediate_size=384, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=2, head_dim=128, rope_theta=10000.0, rope_scaling=None,
                    tie_word_embeddings=False, rms_norm_eps=1e-5, attention_bias=False,
                    mlp_bias=False, max_position_embeddings=512),
        dtype="BF16", seed=1, split="gpt2"),
    "llama_gqa": dict(
        config=dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=256,
                    intermediate_size=384, num_hidden_layers=3, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=64, rope_theta=500000.0,
                    # original_max_position_embeddings 64: the wavelength bands of llama3
                    # scaling (16 and 64 tokens) fall inside the short prompts of the check.
                    rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                      high_freq_factor=4.0,
                                      original_max_position_embeddings=64),
                    tie_word_embeddings=True, rms_norm_eps=1e-5, attention_bias=False,
                    mlp_bias=False, max_position_embeddings=512),
        dtype="F16", seed=2, split="llama3"),
    "qwen2_bias": dict(
        config=dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=128,
                    intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                    num_key_value_heads=1, head_dim=64, rope_theta=1000000.0,
                    rope_scaling=dict(rope_type="linear", factor=2.0),
                    tie_word_embeddings=True, rms_norm_eps=1e-6, use_sliding_window=False,
                    sliding_window=None, max_window_layers=2, max_position_embeddings=512),
        dtype="F32", seed=3, split="qwen2"),
}

CORPUS = """The quick brown fox jumps over the lazy dog. It's a test; we're testing, they'll see.
Long-context decoding attends to 32768 tokens; the budget is 256 or 1024 keys per head.
Hadamard transforms, 2-bit codes and Manhattan distances: 3.14159, 2.71828, 1,000,000.
Café, naïve, Ünïcödé — “quotes” and ‘single’ ones; 日本語のテキスト, русский текст, ελληνικά.
    indented code:    for (int i = 0; i < n; ++i) { sum += x[i]; }
Emoji 🤖🚀 and symbols ©®™ … end.
""" * 3


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_bpe(text, merges_wanted):
    """Deterministic byte-level BPE: most frequent pair first, ties to the smallest pair. The
    training split is a simple regex; any merge list is valid for any split pattern."""
    b2u = bytes_to_unicode()
    words = collections.Counter(re.findall(r"'\w| ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|\s+", text))
    seqs = {w: [b2u[b] for b in w.encode("utf-8")] for w in words}
    merges = []
    for _ in range(merges_wanted):
        pairs = collections.Counter()
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    vocab = {c: i for i, c in enumerate(bytes_to_unicode()[b] for b in range(256))}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab, merges


def tokenizer_json(split):
    vocab, merges = train_bpe(CORPUS, 190)
    bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
    specials = [(bos, len(vocab)), (eos, len(vocab) + 1)]
    added = [dict(id=i, content=c, single_word=False, lstrip=False, rstrip=False,
                  normalized=False, special=True) for c, i in specials]
    byte_level = dict(type="ByteLevel", add_prefix_space=False, trim_offsets=True,
                      use_regex=False)
    if split == "gpt2":
        pre = dict(type="ByteLevel", add_prefix_space=False, trim_offsets=True, use_regex=True)
    else:
        pat = PAT_LLAMA3 if split == "llama3" else PAT_QWEN2
        pre = dict(type="Sequence", pretokenizers=[
            dict(type="Split", pattern=dict(Regex=pat), behavior="Isolated", invert=False),
            byte_level])
    if split == "qwen2":  # Qwen2: no BOS
        post = dict(type="ByteLevel", add_prefix_space=False, trim_offsets=False, use_regex=False)
    else:
        post = dict(type="TemplateProcessing",
                    single=[dict(SpecialToken=dict(id=bos, type_id=0)),
                            dict(Sequence=dict(id="A", type_id=0))],
                    pair=[dict(SpecialToken=dict(id=bos, type_id=0)),
                          dict(Sequence=dict(id="A", type_id=0)),
                          dict(SpecialToken=dict(id=bos, type_id=1)),
                          dict(Sequence=dict(id="B", type_id=1))],
                    special_tokens={bos: dict(id=bos, ids=[specials[0][1]], tokens=[bos])})
    # Merges as "a b" strings for two variants and as pairs (the newer format) for Qwen2.
    merge_list = [[a, b] for a, b in merges] if split == "qwen2" else ["%s %s" % m for m in merges]
    tok = dict(version="1.0", truncation=None, padding=None, added_tokens=added,
               normalizer=dict(type="NFC") if split == "qwen2" else None,
               pre_tokenizer=pre, post_processor=post,
               decoder=dict(type="ByteLevel", add_prefix_space=True, trim_offsets=True,
                            use_regex=True),
               model=dict(type="BPE", dropout=None, unk_token=None,
                          continuing_subword_prefix=None, end_of_word_suffix=None,
                          fuse_unk=False, byte_fallback=False,
                          ignore_merges=split == "llama3", vocab=vocab, merges=merge_list))
    return tok, specials[0][1], specials[1][1]


def make_weights(cfg, seed):
    """Scaled so that activations stay O(1) and attention is far from uniform (a random model
    with HF's 0.02 init has near-uniform attention and near-tied logits, which would hide bugs)."""
    rng = np.random.RandomState(seed)
    D, I = cfg["hidden_size"], cfg["intermediate_size"]
    H, Hkv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    qwen = cfg["model_type"] == "qwen2"

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((VOCAB, D)).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm(D)
        w[p + "post_attention_layernorm.weight"] = norm(D)
        w[p + "self_attn.q_proj.weight"] = mat(H * d, D, 2.0)
        w[p + "self_attn.k_proj.weight"] = mat(Hkv * d, D, 2.0)
        w[p + "self_attn.v_proj.weight"] = mat(Hkv * d, D)
        w[p + "self_attn.o_proj.weight"] = mat(D, H * d)
        if qwen:
            for n, rows in (("q", H * d), ("k", Hkv * d), ("v", Hkv * d)):
                w[p + "self_attn.%s_proj.bias" % n] = (0.5 * rng.standard_normal(rows)).astype(
                    np.float32)
        w[p + "mlp.gate_proj.weight"] = mat(I, D)
        w[p + "mlp.up_proj.weight"] = mat(I, D)
        w[p + "mlp.down_proj.weight"] = mat(D, I)
    w["model.norm.weight"] = norm(D)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(VOCAB, D, 4.0)
    return w


def prompts(seed, n_tokens):
    rng = np.random.RandomState(100 + seed)
    return [rng.randint(0, n_tokens, size=n).tolist() for n in (12, 40)]


def write_variant(out, name, spec, numpy_reference):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    tok, bos, eos = tokenizer_json(spec["split"])
    cfg = dict(spec["config"], vocab_size=VOCAB, hidden_act="silu", bos_token_id=bos,
               eos_token_id=eos, torch_dtype={"BF16": "bfloat16", "F16": "float16",
                                              "F32": "float32"}[spec["dtype"]],
               attention_dropout=0.0, use_cache=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump(dict(bos_token_id=bos, eos_token_id=eos), f, indent=2)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    w = make_weights(cfg, spec["seed"])
    path = os.path.join(d, "model.safetensors")
    st_io.write(path, {k: (v, spec["dtype"]) for k, v in w.items()}, {"format": "pt"})
    ps = prompts(spec["seed"], len(tok["model"]["vocab"]))
    with open(os.path.join(d, "prompts.json"), "w") as f:
        json.dump(dict(prompts=ps, decode_steps=DECODE_STEPS), f)
    print("%s: %s, %d parameters" % (d, spec["dtype"], sum(v.size for v in w.values())))
    if numpy_reference:
        stored, _ = st_io.read(path)  # the weights as stored (rounded to bf16/f16)
        write_reference(os.path.join(d, "reference.numpy.safetensors"), stored, cfg, ps,
                        st_io.crc32(path), "numpy float64 (tools/model_check/numpy_forward.py)")


def write_reference(path, weights, cfg, ps, model_hash, source):
    import numpy_forward
    tensors = {}
    for i, p in enumerate(ps):
        pre, gen, dec = numpy_forward.greedy_reference(weights, cfg, p, DECODE_STEPS)
        tensors["prompt%d.ids" % i] = (np.array(p), "I64")
        tensors["prompt%d.prefill_logits" % i] = (pre, "F32")
        tensors["prompt%d.generated" % i] = (gen, "I64")
        tensors["prompt%d.decode_logits" % i] = (dec, "F32")
    st_io.write(path, tensors, {"source": source, "model_crc32": model_hash,
                                "prompts": len(ps), "decode_steps": DECODE_STEPS})
    print("  wrote", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--numpy-reference", action="store_true",
                    help="also write reference logits from the numpy float64 forward pass")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()
    for name in a.variants.split(","):
        write_variant(a.out, name, VARIANTS[name], a.numpy_reference)


if __name__ == "__main__":
    main()
