#!/usr/bin/env python3
"""Decode tokens/s of a transformers model: AdamasCache (attn_implementation="adamas") against SDPA
with a DynamicCache, on a random-weight Llama-3-8B-shaped model (hidden 4096, 32 query / 8 KV heads,
head_dim 128, intermediate 14336, vocab 128256) with fewer layers, bf16, on one CUDA GPU.

    PYTHONPATH=build-torch/python python3 python/bench/decode_tokens.py --csv decode_tokens.csv
    PYTHONPATH=build-torch/python python3 python/bench/decode_tokens.py --layers 32 --contexts 32768 \\
        --policy adamas:budget=256 --steps 64

Per context: both caches are filled directly with the SAME random K/V (no prefill is run, to save
time: the keys are random, not a model's), then --warmup untimed and --steps timed decode steps of
model(input_ids=[batch, 1], past_key_values=cache, logits_to_keep=1), feeding back the argmax,
timed with CUDA events around the timed steps (host overhead included, as a user sees it).
The peer is SDPA + DynamicCache under each of --sdpa-backends (flash, memory-efficient, cuDNN and
PyTorch's default choice), the fastest per context; every backend's time goes to the CSV.

Floor: the bytes a dense step must read (K and V of every layer at that context, and the weights
except the embedding table, of which one row is read) divided by the device-to-device copy
bandwidth measured in the same run (bytes read + written / time, median of 10 copies of 2 GiB).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import statistics
import sys

import torch
import transformers
from torch.nn.attention import SDPBackend, sdpa_kernel

import adamas

SDPA_BACKENDS = {
    "flash": [SDPBackend.FLASH_ATTENTION],
    "efficient": [SDPBackend.EFFICIENT_ATTENTION],
    "cudnn": [SDPBackend.CUDNN_ATTENTION],
    "math": [SDPBackend.MATH],
    "default": None,
}
FIELDS = [
    "date",
    "device",
    "torch",
    "transformers",
    "layers",
    "batch",
    "context",
    "policy",
    "page_size",
    "sdpa_backend",
    "sdpa_ms_by_backend",
    "sdpa_ms",
    "adamas_ms",
    "sdpa_tokens_per_s",
    "adamas_tokens_per_s",
    "speedup",
    "dense_floor_ms",
    "sdpa_over_floor",
    "copy_gbps",
    "kv_fill",
]
KV_FILL = "random K/V (std 2), both caches the same tensors; no prefill"


def int_list(s: str) -> list[int]:
    out = [int(x) for x in s.split(",") if x.strip()]
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive integers")
    return out


def copy_bandwidth(gib: float = 2.0, reps: int = 10) -> float:
    """Device-to-device copy, bytes read + written per second (median)."""
    n = int(gib * 2**30)
    src = torch.ones(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(reps):
        start.record()
        dst.copy_(src)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n / statistics.median(times)


def build_model(layers: int, max_positions: int) -> torch.nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=max_positions,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    )
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="adamas")
    return model.to(torch.bfloat16).eval()


def fill(caches, model, batch: int, context: int, seed: int) -> None:
    """The same random K/V into every cache, layer by layer."""
    cfg = model.config
    g = torch.Generator(device="cuda").manual_seed(seed)
    shape = (batch, cfg.num_key_value_heads, context, cfg.head_dim)
    for layer in range(cfg.num_hidden_layers):
        k = torch.randn(shape, generator=g, device="cuda", dtype=torch.bfloat16) * 2
        v = torch.randn(shape, generator=g, device="cuda", dtype=torch.bfloat16)
        for cache in caches:
            if isinstance(cache, adamas.AdamasCache):
                cache.extend(k, v, layer)
            else:
                cache.update(k, v, layer)
        del k, v


def time_decode(model, cache, batch: int, warmup: int, steps: int, backend) -> float:
    """Milliseconds per decode step."""
    token = torch.full((batch, 1), 1000, dtype=torch.long, device="cuda")
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.inference_mode(), sdpa_kernel(backend) if backend else contextlib.nullcontext():
        for i in range(warmup + steps):
            if i == warmup:
                start.record()
            logits = model(input_ids=token, past_key_values=cache, use_cache=True, logits_to_keep=1).logits
            token = logits[:, -1:].argmax(dim=-1)
        stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / steps


def dense_step_bytes(model, batch: int, context: int) -> int:
    cfg = model.config
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * context * batch * 2  # bf16
    embedding = model.get_input_embeddings().weight
    weights = sum(p.numel() * p.element_size() for p in model.parameters() if p is not embedding)
    return kv + weights + embedding.shape[1] * embedding.element_size() * batch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4, help="decoder layers (default 4; Llama-3-8B has 32)")
    ap.add_argument("--contexts", type=int_list, default=int_list("32768,65536,131072"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--policy", default="adamas:budget=256", help="AdamasCache policy (default %(default)s)")
    ap.add_argument("--page-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=32, help="timed decode steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed decode steps before them")
    ap.add_argument(
        "--sdpa-backends",
        default="flash,efficient,cudnn,default",
        help="SDPA backends to time the peer with; the fastest is the peer (default %(default)s; "
        "'default': PyTorch's own choice)",
    )
    ap.add_argument("--csv", help="write the rows to this CSV file")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("decode_tokens: needs a CUDA GPU", file=sys.stderr)
        return 1

    adamas.parse_policy(a.policy)
    device = torch.cuda.get_device_name()
    bandwidth = copy_bandwidth()
    model = build_model(a.layers, max(a.contexts) + a.warmup + a.steps + 16)
    names = [n for n in a.sdpa_backends.split(",") if n]
    unknown = [n for n in names if n not in SDPA_BACKENDS]
    if unknown or not names:
        print(f"decode_tokens: --sdpa-backends: unknown {unknown}; choose from {list(SDPA_BACKENDS)}",
              file=sys.stderr)
        return 2
    print(
        f"{device}: torch {torch.__version__}, transformers {transformers.__version__}, copy "
        f"{bandwidth / 1e9:.0f} GB/s; Llama-3-8B shape, {a.layers} layers, bf16, batch {a.batch}, "
        f"{a.policy} (page_size {a.page_size}); peer: the fastest of SDPA {', '.join(names)} + DynamicCache"
    )
    print(f"K/V: {KV_FILL}\n")
    header = (
        f"{'context':>8} | {'best sdpa':>9} {'ms':>7} {'tok/s':>7} | {'adamas ms':>9} {'tok/s':>7} | "
        f"{'speedup':>7} | {'dense floor ms':>14} {'sdpa/floor':>10}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for context in a.contexts:
        dynamic = transformers.DynamicCache()
        sparse = adamas.AdamasCache(
            policy=a.policy,
            page_size=a.page_size,
            config=model.config,
            max_tokens=a.batch * (context + a.warmup + a.steps + a.page_size),
        )
        fill([dynamic, sparse], model, a.batch, context, seed=context)
        model.set_attn_implementation("sdpa")
        per_backend = {}
        for name in names:
            try:
                per_backend[name] = time_decode(model, dynamic, a.batch, a.warmup, a.steps, SDPA_BACKENDS[name])
            except RuntimeError as e:  # a backend without a kernel for this shape
                print(f"  (SDPA {name}: {str(e).splitlines()[0][:90]})")
        best_backend = min(per_backend, key=per_backend.get)
        sdpa_ms = per_backend[best_backend]
        del dynamic
        torch.cuda.empty_cache()
        model.set_attn_implementation("adamas")
        adamas_ms = time_decode(model, sparse, a.batch, a.warmup, a.steps, None)
        del sparse
        torch.cuda.empty_cache()
        floor_ms = dense_step_bytes(model, a.batch, context) / bandwidth * 1e3
        row = dict(
            date=datetime.date.today().isoformat(),
            device=device,
            torch=torch.__version__,
            transformers=transformers.__version__,
            layers=a.layers,
            batch=a.batch,
            context=context,
            policy=a.policy,
            page_size=a.page_size,
            sdpa_backend=best_backend,
            sdpa_ms_by_backend=" ".join(f"{n}={t:.3f}" for n, t in per_backend.items()),
            sdpa_ms=f"{sdpa_ms:.4f}",
            adamas_ms=f"{adamas_ms:.4f}",
            sdpa_tokens_per_s=f"{a.batch * 1e3 / sdpa_ms:.1f}",
            adamas_tokens_per_s=f"{a.batch * 1e3 / adamas_ms:.1f}",
            speedup=f"{sdpa_ms / adamas_ms:.3f}",
            dense_floor_ms=f"{floor_ms:.4f}",
            sdpa_over_floor=f"{sdpa_ms / floor_ms:.3f}",
            copy_gbps=f"{bandwidth / 1e9:.1f}",
            kv_fill=KV_FILL,
        )
        rows.append(row)
        print(
            f"{context:>8} | {best_backend:>9} {sdpa_ms:>7.3f} {a.batch * 1e3 / sdpa_ms:>7.1f} | {adamas_ms:>9.3f} "
            f"{a.batch * 1e3 / adamas_ms:>7.1f} | {sdpa_ms / adamas_ms:>6.2f}x | {floor_ms:>14.3f} "
            f"{sdpa_ms / floor_ms:>9.2f}x",
            flush=True,
        )
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        print(f"\nwrote {a.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
