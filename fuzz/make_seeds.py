#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/) and the fixed byte-level BPE
tokenizer of bpe_encode_fuzz (fuzz/data/tiny_bpe_tokenizer.json). Deterministic: running it again
rewrites the same bytes. Needs only Python 3's standard library.

    python3 fuzz/make_seeds.py            # into the fuzz/ folder beside this script

Seeds are small valid inputs plus a few invalid ones next to each rule the parsers check; libFuzzer
mutates from there. Files are named for what they hold. Inputs that found a bug are kept in the
corpus as regress_<what> (added by hand, not by this script); scripts/fuzz.sh never writes into
the repository's corpus.
"""
import collections
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
DATA = os.path.join(HERE, "data")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------
# safetensors


def safetensors(tensors, metadata=None, pad_to=8, raw_header=None):
    """tensors: list of (name, dtype string, shape, bytes). Offsets laid out in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name, dtype, shape, payload in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))
    h = h.encode()
    if pad_to:
        h += b" " * ((-(8 + len(h))) % pad_to)
    return struct.pack("<Q", len(h)) + h + data


def arr(fmt, values):
    """Little-endian values: fmt is a struct code (f: F32, e: F16, d: F64, q: I64, i: I32, ...)."""
    return struct.pack("<%d%s" % (len(values), fmt), *values)


def bf16(values):
    return b"".join(struct.pack("<f", v)[2:] for v in values)  # the upper half of each float


def safetensors_seeds():
    t = "safetensors_fuzz"
    write(t, "valid_mixed.safetensors", safetensors([
        ("model.embed_tokens.weight", "F32", [2, 3], arr("f", range(6))),
        ("model.norm.weight", "BF16", [4], bf16([1, 2, 3, 4])),
        ("positions", "I64", [2], arr("q", [7, 8])),
        ("ids", "I32", [1], arr("i", [5])),
        ("mask", "U8", [3], bytes([1, 0, 1])),
    ], metadata={"format": "pt"}))
    # An odd header length: every 2-byte tensor sits at an odd address (copied aligned).
    write(t, "unaligned_f16.safetensors", safetensors([
        ("a", "F16", [3], arr("e", [1, 2, 3])),
        ("b", "F32", [1], arr("f", [4])),
    ], pad_to=0))
    write(t, "empty_and_scalar.safetensors", safetensors([
        ("empty", "F32", [0, 4], b""),
        ("scalar", "F32", [], arr("f", [3.5])),
        ("also_empty", "BF16", [4, 0], b""),
    ]))
    write(t, "other_dtypes.safetensors", safetensors([
        ("f64", "F64", [1], arr("d", [1.0])),
        ("i16", "I16", [2], arr("h", [1, 2])),
        ("u32", "U32", [1], arr("I", [9])),
        ("bool", "BOOL", [2], b"\x01\x00"),
        ("f8", "F8_E4M3", [2], b"\x38\x40"),
        ("i8", "I8", [1], b"\xff"),
        ("u64", "U64", [1], arr("Q", [1])),
    ], metadata={"format": "pt", "note": "x"}))
    # Invalid ones, one rule each.
    two = arr("f", [1, 2])
    write(t, "bad_overlap.safetensors", safetensors([], raw_header=json.dumps({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})) + two)
    write(t, "bad_duplicate_key.safetensors", safetensors([], raw_header=
        '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}') + two)
    write(t, "bad_offsets.safetensors", safetensors([], raw_header=json.dumps({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})) + two)
    write(t, "bad_shape_bytes.safetensors", safetensors([], raw_header=json.dumps({
        "a": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 8]}})) + two)
    write(t, "bad_dtype.safetensors", safetensors([], raw_header=json.dumps({
        "a": {"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 8]}})) + two)
    write(t, "bad_header_length.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    write(t, "bad_short.safetensors", b"\x02\x00\x00")
    write(t, "bad_not_object.safetensors", safetensors([], raw_header='[1,2,3]'))
    write(t, "bad_empty_name.safetensors", safetensors([], raw_header=json.dumps({
        "": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})) + two)


# ---------------------------------------------------------------------------------------------
# model.safetensors.index.json (the shards are written by safetensors_index_fuzz.cc itself)


def index_seeds():
    t = "safetensors_index_fuzz"
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    full = {"model.embed_tokens.weight": s1, "model.norm.weight": s1,
            "lm_head.weight": s2, "x": s2}
    write(t, "valid.json", json.dumps({"metadata": {"total_size": 88}, "weight_map": full},
                                      indent=2))
    write(t, "valid_subdir_dot.json", json.dumps({"weight_map": {
        "extra": "sub/extra.safetensors", "x": "./" + s2}}))
    write(t, "valid_one_shard.json", json.dumps({"weight_map": {"model.norm.weight": s1}}))
    write(t, "bad_wrong_shard.json", json.dumps({"weight_map": {"lm_head.weight": s1}}))
    write(t, "bad_missing_shard.json", json.dumps({"weight_map": {"a": "model-00003.safetensors"}}))
    write(t, "bad_dotdot.json", json.dumps({"weight_map": {"extra": "sub/../../x.safetensors"}}))
    write(t, "bad_absolute.json", json.dumps({"weight_map": {"x": "/etc/passwd"}}))
    write(t, "bad_directory.json", json.dumps({"weight_map": {"x": "dir.safetensors"}}))
    write(t, "bad_not_safetensors.json", json.dumps({"weight_map": {"x": "notes.txt"}}))
    write(t, "bad_duplicate.json", '{"weight_map": {"x": "%s", "x": "%s"}}' % (s2, s2))
    write(t, "bad_no_weight_map.json", '{"metadata": {}, "weight_map": []}')


# ---------------------------------------------------------------------------------------------
# config.json (+ generation_config.json after a NUL byte)

TINY = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 8192,
    "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 6,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 128, "hidden_act": "silu",
    "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000.0,
    "rope_scaling": None, "attention_bias": False, "mlp_bias": False,
    "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
}


def config_seeds():
    t = "config_fuzz"
    write(t, "tiny_llama.json", json.dumps(TINY, indent=1))
    llama31 = dict(TINY, vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                   num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                   rope_theta=500000.0, bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
                   max_position_embeddings=131072,
                   rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 8192,
                                 "rope_type": "llama3"})
    del llama31["head_dim"]
    write(t, "llama31_llama3_rope.json",
          json.dumps(llama31) + "\0" + json.dumps({"eos_token_id": [128001, 128009], "bos_token_id": 128000}))
    mistral = {"architectures": ["MistralForCausalLM"], "model_type": "mistral",
               "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336,
               "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
               "sliding_window": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
               "eos_token_id": 2, "bos_token_id": 1, "rope_scaling": {"type": "linear", "factor": 2}}
    write(t, "mistral_linear_rope.json", json.dumps(mistral))
    qwen = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
            "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
            "num_attention_heads": 14, "num_key_value_heads": 2, "use_sliding_window": True,
            "sliding_window": 32768, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
            "eos_token_id": 151643, "bos_token_id": None, "dtype": "bfloat16"}
    write(t, "qwen2_sliding.json", json.dumps(qwen) + "\0" + '{"eos_token_id": [151645, 151643]}')
    v5 = dict(TINY, rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    del v5["rope_theta"], v5["rope_scaling"]
    write(t, "transformers5_rope_parameters.json", json.dumps(v5) + "\0" + "not json")
    write(t, "bad_head_dim.json", json.dumps(dict(TINY, head_dim=96)))
    write(t, "bad_huge_int.json", json.dumps(dict(TINY, num_hidden_layers=10**12)))
    write(t, "bad_arch.json", json.dumps(dict(TINY, architectures=["GPT2LMHeadModel"])))
    write(t, "bad_eps.json", json.dumps(TINY).replace('"rms_norm_eps": 1e-05', '"rms_norm_eps": 1e-60'))
    write(t, "bad_gen_eos.json", json.dumps(TINY) + "\0" + '{"eos_token_id": 4294967296}')
    write(t, "bad_not_object.json", "[]")


# ---------------------------------------------------------------------------------------------
# Byte-level BPE tokenizer.json


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")

TRAINING_TEXT = """
The quick brown fox jumps over the lazy dog. It's the thing that they'll say when there's
nothing else to say: the three of them went in together, singing and talking, and then the
rain started. We've been thinking that the best thing is to keep going; I'm sure you're right.
for (int i = 0; i < n; ++i) { total += values[i]; } return total;
def run():\n    print("hello, world")\n    return 0
Numbers: 1234567, 3.14159, 2024-12-02, 100%. Unicode: café, naïve, 日本語, emoji 🤖.
"""


def train_bpe(text, merges_wanted):
    b2u = bytes_to_unicode()
    words = re.findall(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+",
                       text)
    counts = collections.Counter(tuple(b2u[b] for b in w.encode("utf-8")) for w in words)
    merges = []
    for _ in range(merges_wanted):
        pairs = collections.Counter()
        for w, c in counts.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]  # deterministic tie-break
        merges.append(best)
        merged = collections.Counter()
        for w, c in counts.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += c
        counts = merged
    return merges


def tokenizer_json(merges, added, split=LLAMA3_SPLIT, normalizer=None, merges_as_lists=False,
                   byte_vocab=True, extra_vocab=(), pre_tokenizer=None, bos="<|begin_of_text|>"):
    b2u = bytes_to_unicode()
    vocab = {}
    if byte_vocab:
        for b in range(256):
            vocab[b2u[b]] = b
    for tok in extra_vocab:
        vocab.setdefault(tok, len(vocab))
    for a, b in merges:
        for piece in (a, b, a + b):
            vocab.setdefault(piece, len(vocab))
    added_tokens = []
    for content in added:
        added_tokens.append({"id": len(vocab) + len(added_tokens), "content": content,
                             "single_word": False, "lstrip": False, "rstrip": False,
                             "normalized": False, "special": True})
    if pre_tokenizer is None:
        pre_tokenizer = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]}
    post = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": bos, "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {bos: {"id": bos, "ids": [len(vocab)], "tokens": [bos]}}}]}
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
        "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab,
                  "merges": [[a, b] for a, b in merges] if merges_as_lists
                  else [a + " " + b for a, b in merges]},
    }


LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>"]


def dumps(j):
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))


def tokenizer_seeds():
    merges = train_bpe(TRAINING_TEXT, 120)
    tiny = tokenizer_json(merges, LLAMA3_SPECIAL)
    os.makedirs(DATA, exist_ok=True)
    with open(os.path.join(DATA, "tiny_bpe_tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(tiny, ensure_ascii=False, indent=1))
        f.write("\n")

    t = "tokenizer_json_fuzz"
    write(t, "tiny_llama3.json", dumps(tiny))
    # Small ones: a few tokens each, so that mutations reach the parser's branches quickly.
    few = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    b2u = bytes_to_unicode()
    letters = [b2u[b] for b in b"abehinost "]
    write(t, "small_llama3_lists.json",
          dumps(tokenizer_json(few, LLAMA3_SPECIAL, merges_as_lists=True, byte_vocab=False,
                               extra_vocab=letters)))
    write(t, "small_qwen2_nfc.json",
          dumps(tokenizer_json(few, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                               split=QWEN2_SPLIT, normalizer={"type": "NFC"}, byte_vocab=False,
                               extra_vocab=letters, bos="<|im_start|>")))
    write(t, "small_gpt2_bytelevel.json",
          dumps(tokenizer_json(few, ["<|begin_of_text|>", "<|eot_id|>"], byte_vocab=False,
                               extra_vocab=letters,
                               pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True,
                                              "trim_offsets": True, "use_regex": True})))
    write(t, "bad_metaspace.json",
          dumps(tokenizer_json(few, [], byte_vocab=False, extra_vocab=letters,
                               pre_tokenizer={"type": "Metaspace", "replacement": "▁"})))
    write(t, "bad_merge.json", '{"model":{"type":"BPE","vocab":{"a":0},"merges":[["a"]]}}')
    write(t, "bad_wordpiece.json", '{"model":{"type":"WordPiece","vocab":{"a":0}}}')
    write(t, "bad_id.json", '{"model":{"type":"BPE","vocab":{"a":-3},"merges":[]}}')


# ---------------------------------------------------------------------------------------------
# Texts for the two tokenizers; ids for SentencePiece

TEXTS = {
    "english.txt": "The quick brown fox jumps over the lazy dog. It's thinking.",
    "whitespace.txt": "  multiple   spaces\t\ttabs\n\n\nnewlines  \r\nCRLF\rCR \n \n  end ",
    "digits.txt": "digits 1234567 3.14159 1,000,000 and 42nd",
    "unicode.txt": "Unicode: café naïve Ünïcödé — “quotes” 日本語のテキスト 🤖🚀 e\u0301",
    "contractions.txt": "I'm you're we've they'll she'd IT'S O'Neil 'LL",
    "special.txt": "<|begin_of_text|>hi<|eot_id|><|eot_id|x<|end_of_text|>",
    "code.txt": "for (int i = 0; i < n; ++i) {\n    total += values[i];\n}\n",
}
INVALID = {
    "invalid_utf8.bin": b"ok \xff\xfe bad \xc3( \xe2\x82 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf end\xe2",
}


def text_seeds():
    for t in ("bpe_encode_fuzz", "sentencepiece_fuzz"):
        for name, s in TEXTS.items():
            write(t, name, s)
        for name, b in INVALID.items():
            write(t, name, b)
    # Ids for the ids half of sentencepiece_fuzz (little-endian uint32 modulo the vocabulary):
    # BOS, byte pieces of a split "€" (<0xE2> <0x82> <0xAC> are ids 3 + byte), EOS, unknown.
    ids = [1, 3 + 0xE2, 3 + 0x82, 3 + 0xAC, 3 + 0xFF, 3 + 0xE2, 2, 0, 300, 301, 3 + 0xF0, 3 + 0x9F]
    write("sentencepiece_fuzz", "ids_bytes_control.bin", struct.pack("<%dI" % len(ids), *ids))
    write("sentencepiece_fuzz", "ids_words.bin", struct.pack("<8I", *range(400, 8000, 950)))


# ---------------------------------------------------------------------------------------------
# Policy strings


def policy_seeds():
    t = "policy_fuzz"
    specs = {
        "full.txt": "full",
        "adamas.txt": "adamas:budget=256,bits=2,dist=l1,hadamard=1,thresholds=paper,gqa=per-head",
        "adamas_calibrated.txt": "adamas:bits=3,dist=l2,hadamard=off,thresholds=calibrated,gqa=shared",
        "quest.txt": "quest:budget=64,dense_layers=0,gqa=shared",
        "oracle.txt": "oracle:budget=1024,dense_layers=2",
        "streaming.txt": "streaming:sinks=4,budget=128",
        "bad_key.txt": "adamas:nope=1",
        "bad_bits.txt": "adamas:bits=4",
        "bad_int.txt": "quest:budget=12x",
        "bad_name.txt": "dense:budget=1",
        "bad_empty_item.txt": "streaming:sinks=1,,budget=2",
    }
    for name, s in specs.items():
        write(t, name, s)


# ---------------------------------------------------------------------------------------------
# Small stand-ins for bugs whose inputs were too large to keep or were found by reading the code
# (the fuzzer's own finds are kept as they were found: regress_* files not written here).


def regression_seeds():
    deep = "[" * 129 + "]" * 129  # one level past the limit (the crash needed ~50000)
    write("safetensors_fuzz", "regress_nested_header.safetensors",
          safetensors([], raw_header='{"__metadata__":{"x":' + deep + '}}'))
    # An empty tensor with huge other dimensions: TensorView::numel() overflowed int64.
    write("safetensors_fuzz", "regress_empty_huge_dims.safetensors", safetensors([], raw_header=json.dumps({
        "t": {"dtype": "U8", "shape": [1 << 62, 2, 0], "data_offsets": [0, 0]}})))
    write("config_fuzz", "regress_nested.json", json.dumps(TINY)[:-1] + ', "rope_theta": ' + deep + "}")
    few = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    letters = [bytes_to_unicode()[b] for b in b"abehinost "]
    j = tokenizer_json(few, LLAMA3_SPECIAL, byte_vocab=False, extra_vocab=letters)
    j["added_tokens"].append({"id": len(j["model"]["vocab"]) + 5, "content": "", "special": True})
    write("tokenizer_json_fuzz", "regress_empty_added_token.json", dumps(j))


def main():
    # Seeds are (re)written by name; other files in the corpus folders (inputs that once found a
    # bug, named regress_*) are left alone.
    safetensors_seeds()
    index_seeds()
    config_seeds()
    tokenizer_seeds()
    text_seeds()
    policy_seeds()
    regression_seeds()
    return 0


if __name__ == "__main__":
    sys.exit(main())
