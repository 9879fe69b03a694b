#!/usr/bin/env python3
"""Writes a Hugging Face-format Llama-family checkpoint with random weights, for benchmarks (no
real weights can be downloaded on the benchmark machines). Needs torch and safetensors; the
weights are generated on the GPU when there is one, one tensor at a time, and written shard by
shard, so host memory holds at most two shards (one being written, one being filled).

  python3 tools/model_check/make_random_checkpoint.py --preset llama3-8b --out /tmp/llama3-8b
  python3 tools/model_check/make_random_checkpoint.py --preset tiny --out /tmp/tiny --device cpu
  python3 tools/model_check/make_random_checkpoint.py --preset llama3-8b --layers 4 --dry-run

Presets (shapes of the public models; the weights are random):
  llama3-8b    32 layers, hidden 4096, 32/8 heads x 128, intermediate 14336, vocab 128256,
               rope_theta 500000 with llama3 scaling (x8, low 1, high 4, original 8192),
               max_position_embeddings 131072, untied lm_head
  llama2-7b    32 layers, hidden 4096, 32/32 heads x 128, intermediate 11008, vocab 32000,
               rope_theta 10000, no scaling; max_position_embeddings written as 131072 (the real
               model says 4096) so that long-context benchmarks are allowed
  llama3.2-1b  16 layers, hidden 2048, 32/8 heads x 64, intermediate 8192, vocab 128256, tied,
               rope_theta 500000 with llama3 scaling (x32, low 1, high 4, original 8192),
               max_position_embeddings 131072
  tiny         2 layers, hidden 256, 4/2 heads x 64, intermediate 512, vocab 1024, untied,
               rope_theta 10000, max_position_embeddings 131072 (quick checks)

Output: config.json (legacy rope_theta + rope_scaling fields: transformers 5 converts them to
rope_parameters, and src/model/config.cc reads both forms), generation_config.json, and either
model.safetensors (one shard) or model-0000i-of-0000N.safetensors shards of at most --shard-gib
GiB with model.safetensors.index.json ("metadata": {"total_size"}, "weight_map").

Speed (H200 machine, 16 cores): llama3-8b, 16.06 GB in 4 shards, in 13 s; generating a shard on
the GPU and copying it to the host overlaps with writing the one before.

Weights: every linear layer and the embedding ~ N(0, std^2) with std 0.02 (HF's initializer
range), norms 1. Each sublayer sees an RMS-normalized input, so its output has std about
std * sqrt(fan_in) (about 1.3 for q/k/v/gate/up at hidden 4096, 1.9 for down_proj): the residual
stream grows like sqrt(number of sublayers), to about 15 after 32 layers, far from bf16's range,
and the logits have std about 1.3. Each tensor has its own generator seeded from (--seed, tensor
index), so --layers N gives the same first layers as the full model on the same device type
(CUDA and CPU generators give different numbers).
"""
import argparse
import json
import os
import sys
import time

GIB = 1 << 30

LLAMA3_BOS_EOS = dict(bos_token_id=128000, eos_token_id=128001)
LLAMA2_BOS_EOS = dict(bos_token_id=1, eos_token_id=2)

PRESETS = {
    "llama3-8b": dict(
        num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
        head_dim=128, intermediate_size=14336, vocab_size=128256, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=8192),
        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False,
        **LLAMA3_BOS_EOS),
    "llama2-7b": dict(
        num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=32,
        head_dim=128, intermediate_size=11008, vocab_size=32000, rope_theta=10000.0,
        rope_scaling=None,
        # The real Llama-2-7B says 4096; 131072 lets long-context benchmarks run (see NOTES).
        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False,
        **LLAMA2_BOS_EOS),
    "llama3.2-1b": dict(
        num_hidden_layers=16, hidden_size=2048, num_attention_heads=32, num_key_value_heads=8,
        head_dim=64, intermediate_size=8192, vocab_size=128256, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=32.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=8192),
        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=True,
        **LLAMA3_BOS_EOS),
    "tiny": dict(
        num_hidden_layers=2, hidden_size=256, num_attention_heads=4, num_key_value_heads=2,
        head_dim=64, intermediate_size=512, vocab_size=1024, rope_theta=10000.0,
        rope_scaling=None, max_position_embeddings=131072, rms_norm_eps=1e-5,
        tie_word_embeddings=False, **LLAMA2_BOS_EOS),
}

NOTES = {
    "llama2-7b": "max_position_embeddings is 131072, not Llama-2's 4096, so that long-context "
                 "benchmarks are allowed (RoPE with theta 10000 and no scaling, as the real model)",
}

DTYPES = {  # --dtype -> (config string, safetensors bytes per element)
    "bf16": ("bfloat16", 2),
    "f16": ("float16", 2),
    "f32": ("float32", 4),
}


def build_config(preset, layers=None, max_position=None, dtype="bf16"):
    """The config.json dict of a preset with the overrides applied (pure; no torch)."""
    if preset not in PRESETS:
        raise ValueError("unknown preset %r: expected one of %s" % (preset, ", ".join(PRESETS)))
    p = dict(PRESETS[preset])
    if layers is not None:
        if layers < 1:
            raise ValueError("--layers must be >= 1, got %d" % layers)
        p["num_hidden_layers"] = layers
    if max_position is not None:
        if max_position < 1:
            raise ValueError("--max-position must be >= 1, got %d" % max_position)
        p["max_position_embeddings"] = max_position
    if p["num_attention_heads"] % p["num_key_value_heads"]:
        raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
    dtype_name = DTYPES[dtype][0]
    cfg = dict(
        architectures=["LlamaForCausalLM"], model_type="llama",
        attention_bias=False, attention_dropout=0.0, hidden_act="silu",
        initializer_range=0.02, mlp_bias=False, pretraining_tp=1, use_cache=True,
        **p)
    # transformers 4.x reads torch_dtype, 5.x dtype; src/model/config.cc either.
    cfg["torch_dtype"] = dtype_name
    cfg["dtype"] = dtype_name
    return dict(sorted(cfg.items()))


def generation_config(cfg):
    return dict(bos_token_id=cfg["bos_token_id"], eos_token_id=cfg["eos_token_id"],
                do_sample=False)


def tensor_specs(cfg):
    """[(name, shape, kind)] in file order; kind: 'embed', 'linear' or 'norm' (pure)."""
    D, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, Hkv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    specs = [("model.embed_tokens.weight", (V, D), "embed")]
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        specs += [
            (p + "input_layernorm.weight", (D,), "norm"),
            (p + "self_attn.q_proj.weight", (H * d, D), "linear"),
            (p + "self_attn.k_proj.weight", (Hkv * d, D), "linear"),
            (p + "self_attn.v_proj.weight", (Hkv * d, D), "linear"),
            (p + "self_attn.o_proj.weight", (D, H * d), "linear"),
            (p + "post_attention_layernorm.weight", (D,), "norm"),
            (p + "mlp.gate_proj.weight", (I, D), "linear"),
            (p + "mlp.up_proj.weight", (I, D), "linear"),
            (p + "mlp.down_proj.weight", (D, I), "linear"),
        ]
    specs.append(("model.norm.weight", (D,), "norm"))
    if not cfg["tie_word_embeddings"]:
        specs.append(("lm_head.weight", (V, D), "linear"))
    return specs


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def plan_shards(specs, elem_bytes, max_bytes):
    """Greedy split of the tensors, in order, into shards of at most max_bytes of tensor data
    (a tensor larger than that gets a shard of its own). -> [[index into specs]] (pure)."""
    shards, cur, cur_bytes = [], [], 0
    for i, (_, shape, _) in enumerate(specs):
        b = numel(shape) * elem_bytes
        if cur and cur_bytes + b > max_bytes:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(i)
        cur_bytes += b
    if cur:
        shards.append(cur)
    return shards


def shard_file_names(n):
    if n == 1:
        return ["model.safetensors"]
    return ["model-%05d-of-%05d.safetensors" % (k + 1, n) for k in range(n)]


def index_json(specs, shards, names, elem_bytes):
    weight_map = {}
    for shard, fname in zip(shards, names):
        for i in shard:
            weight_map[specs[i][0]] = fname
    total = sum(numel(shape) for _, shape, _ in specs) * elem_bytes
    return {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}


def stale_files(out_dir):
    """Weight files of an earlier checkpoint in out_dir that would confuse the loaders."""
    if not os.path.isdir(out_dir):
        return []
    return sorted(f for f in os.listdir(out_dir)
                  if f == "model.safetensors.index.json"
                  or (f.startswith("model") and f.endswith(".safetensors")))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


ST_DTYPES = {"bf16": "BF16", "f16": "F16", "f32": "F32"}


def safetensors_header(entries, st_dtype):
    """entries: [(name, shape, nbytes)] in data order -> the header bytes (length prefix, JSON
    padded with spaces to a multiple of 8, as the format and safetensors' own writer do)."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, nbytes in entries:
        header[name] = {"dtype": st_dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return len(h).to_bytes(8, "little") + h


def write_shard(path, tensors, st_dtype):
    """tensors: name -> contiguous CPU torch tensor. Written without the copy that
    safetensors.torch.save_file makes of every tensor; file.write releases the GIL, so this
    overlaps with the generation of the next shard."""
    import torch
    t0 = time.perf_counter()
    names = sorted(tensors)
    entries = [(n, tuple(tensors[n].shape), tensors[n].numel() * tensors[n].element_size())
               for n in names]
    with open(path, "wb") as f:
        f.write(safetensors_header(entries, st_dtype))
        for n in names:
            f.write(memoryview(tensors[n].reshape(-1).view(torch.uint8).numpy()))
    return time.perf_counter() - t0


def generate_and_write(specs, shards, names, a):
    import torch
    from concurrent.futures import ThreadPoolExecutor

    tdtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[a.dtype]
    device = torch.device(a.device)

    def make(i):
        _, shape, kind = specs[i]
        if kind == "norm":
            return torch.ones(shape, dtype=tdtype)
        g = torch.Generator(device=device)
        g.manual_seed((a.seed * 1000003 + i) & 0x7FFFFFFFFFFFFFFF)
        t = torch.randn(shape, generator=g, device=device, dtype=torch.float32)
        return t.mul_(a.std).to(tdtype).cpu().contiguous()

    total_bytes, t_start = 0, time.perf_counter()
    writer = ThreadPoolExecutor(max_workers=1)  # writes shard k while shard k+1 is generated
    pending = None
    try:
        for k, (shard, fname) in enumerate(zip(shards, names)):
            t0 = time.perf_counter()
            tensors = {specs[i][0]: make(i) for i in shard}
            gen_s = time.perf_counter() - t0
            nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
            if pending is not None:  # at most two shards in host memory
                print("  wrote %s in %.1f s" % (pending[0], pending[1].result()), flush=True)
            print("[%d/%d] %s: %d tensors, %.2f GiB, generated in %.1f s" % (
                k + 1, len(shards), fname, len(tensors), nbytes / GIB, gen_s), flush=True)
            pending = (fname, writer.submit(write_shard, os.path.join(a.out, fname), tensors,
                                            ST_DTYPES[a.dtype]))
            tensors = None
            total_bytes += nbytes
        if pending is not None:
            print("  wrote %s in %.1f s" % (pending[0], pending[1].result()), flush=True)
    finally:
        writer.shutdown(wait=True)
    return total_bytes, time.perf_counter() - t_start


def check_headers(out_dir, specs, shards, names):
    """Re-reads each shard's header with the safetensors package (when installed; safe_open
    also checks the data offsets against the file size): names and shapes must match the plan."""
    try:
        from safetensors import safe_open
    except ImportError:
        return "safetensors not installed: headers not re-read"
    for shard, fname in zip(shards, names):
        with safe_open(os.path.join(out_dir, fname), framework="pt") as f:
            keys = set(f.keys())
            want = {specs[i][0]: tuple(specs[i][1]) for i in shard}
            if keys != set(want):
                raise SystemExit("%s: tensors %s, expected %s" % (fname, sorted(keys),
                                                                  sorted(want)))
            for n in keys:
                shape = tuple(f.get_slice(n).get_shape())
                if shape != want[n]:
                    raise SystemExit("%s: %s has shape %s, expected %s" % (fname, n, shape,
                                                                         want[n]))
    return "headers re-read with safetensors: names and shapes match"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", required=True, choices=list(PRESETS))
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--layers", type=int, default=None, help="override num_hidden_layers")
    ap.add_argument("--max-position", type=int, default=None,
                    help="override max_position_embeddings")
    ap.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--std", type=float, default=0.02,
                    help="standard deviation of the linear and embedding weights")
    ap.add_argument("--device", default=None,
                    help="cuda or cpu (default: cuda if torch sees a GPU)")
    ap.add_argument("--shard-gib", type=float, default=4.0,
                    help="largest shard, GiB of tensor data (default 4)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the config and the shard plan; write nothing, need no torch")
    a = ap.parse_args(argv)
    try:
        cfg = build_config(a.preset, a.layers, a.max_position, a.dtype)
    except ValueError as e:
        ap.error(str(e))
    if a.shard_gib <= 0:
        ap.error("--shard-gib must be > 0")
    elem = DTYPES[a.dtype][1]
    specs = tensor_specs(cfg)
    shards = plan_shards(specs, elem, int(a.shard_gib * GIB))
    names = shard_file_names(len(shards))
    n_params = sum(numel(s) for _, s, _ in specs)
    print("%s (%s): %d layers, hidden %d, heads %d/%d x %d, intermediate %d, vocab %d, %s, "
          "%.3f B parameters, %.2f GiB in %d file(s)" % (
              a.preset, a.dtype, cfg["num_hidden_layers"], cfg["hidden_size"],
              cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"],
              cfg["intermediate_size"], cfg["vocab_size"],
              "tied" if cfg["tie_word_embeddings"] else "untied", n_params / 1e9,
              n_params * elem / GIB, len(shards)), flush=True)
    if a.preset in NOTES and a.max_position is None:
        print("note:", NOTES[a.preset])
    if a.dry_run:
        print(json.dumps(cfg, indent=2))
        for fname, shard in zip(names, shards):
            b = sum(numel(specs[i][1]) for i in shard) * elem
            print("  %s: %d tensors, %.2f GiB (%s .. %s)" % (
                fname, len(shard), b / GIB, specs[shard[0]][0], specs[shard[-1]][0]))
        return 0

    import torch
    if a.device is None:
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no GPU")
    os.makedirs(a.out, exist_ok=True)
    for f in stale_files(a.out):
        print("removing stale", os.path.join(a.out, f))
        os.remove(os.path.join(a.out, f))
    write_json(os.path.join(a.out, "config.json"), cfg)
    write_json(os.path.join(a.out, "generation_config.json"), generation_config(cfg))
    print("generating on %s, seed %d, std %g" % (a.device, a.seed, a.std), flush=True)
    total, secs = generate_and_write(specs, shards, names, a)
    if len(shards) > 1:
        write_json(os.path.join(a.out, "model.safetensors.index.json"),
                   index_json(specs, shards, names, elem))
    print("wrote %s: %d bytes (%.2f GiB) of tensors in %d file(s), %.1f s (%.2f GiB/s)" % (
        a.out, total, total / GIB, len(shards), secs, total / GIB / max(secs, 1e-9)))
    print(check_headers(a.out, specs, shards, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
