#!/usr/bin/env python3
"""One layer's decode attention as a PyTorch op: torch.ops.adamas.decode (paged cache, key codes,
select + sparse attention) against every PyTorch SDPA backend (flash, memory-efficient, cuDNN) on
contiguous K/V, Llama-3-8B attention shape (32 query / 8 KV heads, head_dim 128), bf16, on one
CUDA GPU. Each op is captured in a CUDA graph of --reps calls and the graph replayed, so the
times are device time without Python launch overhead (both sides alike).

    PYTHONPATH=build-torch/python python3 python/bench/decode_op.py --csv decode_op.csv

Floor: the bytes dense attention must read (K and V of the batch) divided by the device-to-device
copy bandwidth measured in the same run; Adamas reads the key codes (1/8 of K), then `budget`
keys and values per query head.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from adamas import ops
from adamas.policy import default_thresholds
from decode_tokens import copy_bandwidth  # same folder: python/bench

HQ, HKV, D = 32, 8, 128
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}


def graph_ms(fn, reps: int) -> float:
    """Milliseconds per call of fn, from a CUDA graph of `reps` calls (median of 5 replays)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    times = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        graph.replay()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / reps)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contexts", default="32768,65536,131072")
    ap.add_argument("--batches", default="1,4,8")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--page-size", type=int, default=16)
    ap.add_argument("--reps", type=int, default=20, help="calls per CUDA graph")
    ap.add_argument("--csv", help="write the rows to this CSV file")
    a = ap.parse_args()
    torch.manual_seed(0)
    gbps = copy_bandwidth() / 1e9
    policy = f"adamas:budget={a.budget}"
    dev = torch.cuda.get_device_name()
    print(f"{dev}: torch {torch.__version__}, copy {gbps:.0f} GB/s; {HQ} q / {HKV} KV heads, head_dim {D}, "
          f"bf16; {policy}, page {a.page_size}; CUDA-graph device time per call")
    hdr = (f"{'batch':>5} {'context':>8} | {'flash':>7} {'effic.':>7} {'cudnn':>7} | {'best sdpa':>9} | "
           f"{'adamas':>7} | {'speedup':>7} | {'dense floor':>11} {'best/floor':>10}")
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for batch in [int(x) for x in a.batches.split(",")]:
        for context in [int(x) for x in a.contexts.split(",")]:
            P = a.page_size
            pages_per_seq = (context + P - 1) // P
            num_pages = batch * pages_per_seq
            # One tensor per role: SDPA's contiguous [B, Hkv, L, D] and the paged pools hold the
            # same values (the pools written through append_kv, which also encodes the codes).
            k = torch.randn(batch, HKV, context, D, device="cuda", dtype=torch.bfloat16)
            v = torch.randn_like(k)
            q = torch.randn(batch, HQ, 1, D, device="cuda", dtype=torch.bfloat16)
            k_cache = torch.empty(HKV, num_pages, P, D, device="cuda", dtype=torch.bfloat16)
            v_cache = torch.empty_like(k_cache)
            codes = torch.zeros(HKV, num_pages, ops.code_page_words(2, D, P), device="cuda", dtype=torch.int64)
            thresholds = torch.zeros(HKV, 7, device="cuda")
            thresholds[:, :3] = torch.tensor(default_thresholds(2), device="cuda")
            for b in range(batch):
                slots = torch.arange(context, device="cuda", dtype=torch.int32) + b * pages_per_seq * P
                ops.append_kv(k_cache, v_cache, codes, thresholds, k[b].transpose(0, 1).contiguous(),
                              v[b].transpose(0, 1).contiguous(), slots, True)
            indptr = torch.arange(batch + 1, device="cuda", dtype=torch.int32) * pages_per_seq
            indices = torch.arange(num_pages, device="cuda", dtype=torch.int32)
            lengths = torch.full((batch,), context, device="cuda", dtype=torch.int32)
            ws = torch.zeros(ops.workspace_bytes(k_cache, codes, thresholds, HQ, batch, context, policy),
                             dtype=torch.uint8, device="cuda")
            q3 = q[:, :, 0, :].contiguous()

            def run_adamas():
                torch.ops.adamas.decode(q3, k_cache, v_cache, codes, thresholds, indptr, indices, lengths,
                                        context, policy, 0.0, ws)

            times = {}
            for name, backend in BACKENDS.items():
                def run_sdpa(backend=backend):
                    with sdpa_kernel([backend]):
                        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                try:
                    times[name] = graph_ms(run_sdpa, a.reps)
                except RuntimeError as e:  # a backend that does not take this shape
                    times[name] = float("nan")
                    print(f"  ({name}: {str(e).splitlines()[0][:80]})")
            ours = graph_ms(run_adamas, a.reps)
            finite = {n: t for n, t in times.items() if t == t}
            best_name = min(finite, key=finite.get)
            best = finite[best_name]
            floor_ms = 2 * k.numel() * k.element_size() / (gbps * 1e9) * 1e3
            print(f"{batch:>5} {context:>8} | {times['flash']:7.3f} {times['efficient']:7.3f} "
                  f"{times['cudnn']:7.3f} | {best:9.3f} | {ours:7.3f} | {best / ours:6.2f}x | "
                  f"{floor_ms:11.3f} {best / floor_ms:9.2f}x")
            rows.append(dict(date=datetime.date.today().isoformat(), device=dev, torch=torch.__version__,
                             batch=batch, context=context, policy=policy, page_size=P,
                             flash_ms=times["flash"], efficient_ms=times["efficient"],
                             cudnn_ms=times["cudnn"], best_sdpa=best_name, best_sdpa_ms=best,
                             adamas_ms=ours, speedup=best / ours, dense_floor_ms=floor_ms, copy_gbps=gbps))
            del k, v, k_cache, v_cache, codes, ws
            torch.cuda.empty_cache()
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"wrote {a.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
