#!/usr/bin/env python3
"""PyTorch baseline of the GPU decode benchmark: one decode step of one layer through
torch.nn.functional.scaled_dot_product_attention with the flash backend, on the grid of
bench/cuda_decode_bench.cc (adamas_cuda_bench).

Per (heads q/kv, batch, context): q [B, Hq, 1, d], k/v [B, Hkv, L, d] f16 (or bf16), contiguous,
random normal. GQA (Hq != Hkv) passes enable_gqa=True; if the flash backend refuses it, the error
is recorded and the step is timed with the default backend selection instead, naming the backend
chosen (K/V are never repeated: that would read Hq/Hkv times the bytes). Enough K/V sets rotate
that one rotation reads at least 4x the L2 (memory capped), so no step finds its data in the L2.
Each point: median of CUDA-event times after warm-up, of eager calls and (unless --no-graph) of
the call replayed as a CUDA graph. A device-to-device copy of a 2 GiB tensor (bytes read +
written / time) is measured in the same run. Options meant for adamas_cuda_bench alone are
ignored with a note, so that a run script can pass the same extra arguments to both.

Usage: python3 bench/sdpa_baseline.py --csv sdpa.csv [--quick] [--contexts 8192,32768]
       [--batches 1,8] [--heads 32/32,32/8]
Then:  python3 bench/plot_cuda_bench.py ours.csv sdpa.csv out.png
"""
import argparse
import csv
import datetime
import math
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

GIB = 1024**3


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def first_line(e):
    text = str(e).strip()
    return (text.splitlines()[0] if text else repr(e))[:300]


def int_list(s):
    return [int(x) for x in s.split(",") if x]


def heads_list(s):
    out = []
    for part in s.split(","):
        if not part:
            continue
        q, _, kv = part.partition("/")
        q, kv = int(q), int(kv or q)
        if q < 1 or kv < 1 or q % kv:
            raise SystemExit(f"--heads: query heads must be a multiple of KV heads, got {part}")
        out.append((q, kv))
    return out


def gpu_summary():
    p = torch.cuda.get_device_properties(0)
    l2 = getattr(p, "L2_cache_size", 0)
    return (f"{p.name} (sm_{p.major}{p.minor}, {p.multi_processor_count} SMs, "
            f"{l2 >> 20} MiB L2)"), l2


def event_time(fn, reps, warmup, min_reps, point_ms):
    """Median ms of fn() over up to `reps` event-timed calls (fewer, but at least min_reps, once
    point_ms of device time was measured), after `warmup` untimed calls. fn(i) gets the step."""
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    step = 0
    for _ in range(warmup):
        fn(step)
        step += 1
    torch.cuda.synchronize()
    times, spent = [], 0.0
    while len(times) < reps and not (len(times) >= min_reps and spent >= point_ms):
        start.record()
        fn(step)
        stop.record()
        stop.synchronize()
        t = start.elapsed_time(stop)
        times.append(t)
        spent += t
        step += 1
    return statistics.median(times), len(times)


def measure_copy(gib):
    n = int(gib * GIB) // 2 // 256 * 256  # f16 elements
    src = torch.randn(n, device="cuda", dtype=torch.float16)
    dst = torch.empty_like(src)
    ms, _ = event_time(lambda i: dst.copy_(src), reps=15, warmup=3, min_reps=15, point_ms=0)
    nbytes = src.numel() * src.element_size()
    src = dst = None
    torch.cuda.empty_cache()
    return 2 * nbytes / (ms * 1e-3) / 1e9, nbytes


def backend_names():
    names = {}
    for name in ("MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION",
                 "OVERRIDEABLE", "ERROR"):
        b = getattr(SDPBackend, name, None)
        if b is not None:
            try:
                names[int(b.value)] = name.lower()
            except Exception:  # noqa: BLE001
                pass
    return names


def default_backend(q, k, v, gqa):
    """The backend SDPA's default selection picks for these inputs (private API; best effort)."""
    try:
        choice = torch._fused_sdp_choice(q, k, v, None, 0.0, False, enable_gqa=gqa)
        return "default:" + backend_names().get(int(choice), str(choice))
    except Exception:  # noqa: BLE001
        return "default"


def time_graphs(sets, kwargs, flash, a, meta):
    """Median ms of one SDPA call replayed as a CUDA graph (one graph per K/V set, captured after
    the eager runs): device time without launch gaps. None (with a note) when capture fails."""
    graphs = []
    try:
        for q, k, v in sets:
            g = torch.cuda.CUDAGraph()
            if flash:
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION), torch.cuda.graph(g):
                    F.scaled_dot_product_attention(q, k, v, **kwargs)
            else:
                with torch.cuda.graph(g):
                    F.scaled_dot_product_attention(q, k, v, **kwargs)
            graphs.append(g)
        ms, _ = event_time(lambda i: graphs[i % len(graphs)].replay(), a.reps, a.warmup,
                           a.min_reps, a.point_ms)
        return ms
    except RuntimeError as e:
        note = f"CUDA graph capture of SDPA failed: {first_line(e)}"
        log("  " + note)
        meta["notes"].append(note)
        return None
    finally:
        graphs.clear()


def run_config(hq, hkv, batch, ctx, a, dtype, l2, writer, rows, meta):
    d = a.head_dim
    esize = torch.finfo(dtype).bits // 8
    set_bytes = 2 * batch * hkv * ctx * d * esize  # K + V of one set
    free, _ = torch.cuda.mem_get_info()
    budget = min(free - 2 * GIB - 0.02 * meta["total_mem"], a.mem_cap_gb * 1e9)
    fit = int(budget // set_bytes) if budget > 0 else 0
    if fit < 1:
        note = (f"heads {hq}/{hkv} batch {batch} context {ctx}: skipped, needs "
                f"{set_bytes / GIB:.2f} GiB, {free / GIB:.2f} GiB free")
        log("  " + note)
        meta["notes"].append(note)
        return
    wanted = max(1, math.ceil(a.rotate_l2 * l2 / set_bytes))
    nsets = min(wanted, fit, a.max_sets)
    log(f"  {nsets} K/V set(s) of {set_bytes / GIB:.2f} GiB")
    gen = torch.Generator(device="cuda")
    gen.manual_seed(hash((hq, hkv, batch, ctx)) & 0xFFFFFFFF)
    sets = []
    for _ in range(nsets):
        k = torch.randn(batch, hkv, ctx, d, device="cuda", dtype=dtype, generator=gen)
        k.mul_(a.key_std)
        v = torch.randn(batch, hkv, ctx, d, device="cuda", dtype=dtype, generator=gen)
        q = torch.randn(batch, hq, 1, d, device="cuda", dtype=dtype, generator=gen)
        sets.append((q, k, v))
    torch.cuda.synchronize()
    gqa = hq != hkv

    def step_with(kwargs):
        def fn(i):
            q, k, v = sets[i % nsets]
            return F.scaled_dot_product_attention(q, k, v, **kwargs)
        return fn

    kwargs = {"enable_gqa": True} if gqa else {}
    backend, error, ms, reps = "flash", "", None, 0
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught, \
                sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            warnings.simplefilter("always")
            ms, reps = event_time(step_with(kwargs), a.reps, a.warmup, a.min_reps, a.point_ms)
    except RuntimeError as e:  # flash refused these inputs (or a real failure)
        error = first_line(e)
        # SDPA says why a backend was rejected in warnings, then raises "No available kernel".
        reasons = [first_line(w.message) for w in caught]
        if reasons:
            error += " (" + "; ".join(dict.fromkeys(reasons)) + ")"
        log(f"  flash backend failed: {error}")
        q, k, v = sets[0]
        backend = default_backend(q, k, v, gqa)
        try:
            ms, reps = event_time(step_with(kwargs), a.reps, a.warmup, a.min_reps, a.point_ms)
        except RuntimeError as e2:
            error += " | default: " + first_line(e2)
            log(f"  default selection failed too: {e2}")
            ms, backend = None, "none"
    graph_ms = None
    if ms is not None and a.graph:
        graph_ms = time_graphs(sets, kwargs, backend == "flash", a, meta)
    if ms is not None:
        out = step_with(kwargs)(0)
        if not torch.isfinite(out).all():
            meta["notes"].append(f"heads {hq}/{hkv} batch {batch} context {ctx}: "
                                 "non-finite output")
    bytes_read = batch * hkv * ctx * d * esize * 2
    gbps = bytes_read / (ms * 1e-3) / 1e9 if ms else 0.0
    row = {
        "date": meta["date"], "gpu": meta["gpu"], "heads_q": hq, "heads_kv": hkv,
        "batch": batch, "context": ctx, "dtype": a.dtype,
        "sdpa_ms": f"{ms:.5f}" if ms else "", "sdpa_gbps": f"{gbps:.1f}" if ms else "",
        "backend": backend, "copy_gbps": f"{meta['copy_gbps']:.1f}",
        "sdpa_graph_ms": f"{graph_ms:.5f}" if graph_ms else "",
        "sets": nsets, "reps": reps, "error": error,
    }
    writer.writerow(row)
    meta["csv_file"].flush()
    rows.append(row)
    ms_s = f"{ms:9.3f}" if ms else "     fail"
    g_s = f"{graph_ms:9.3f}" if graph_ms else "        -"
    print(f"{hq:>3}/{hkv:<3} {batch:>5} {ctx:>8} | {ms_s} {g_s} | {gbps:8.0f} "
          f"{100 * gbps / meta['copy_gbps']:5.0f}% | {backend}", flush=True)
    sets.clear()
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default="sdpa_baseline.csv")
    ap.add_argument("--heads", type=heads_list, default=heads_list("32/32,32/8"))
    ap.add_argument("--contexts", type=int_list, default=None,
                    help="default 8192,32768,131072,524288")
    ap.add_argument("--batches", type=int_list, default=None, help="default 1,8")
    ap.add_argument("--dtype", choices=["f16", "bf16"], default="f16")
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--reps", type=int, default=None, help="timed steps per point (default 50)")
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--point-ms", type=float, default=400.0,
                    help="stop repeating a point (after --min-reps) once this much was timed")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-graph", dest="graph", action="store_false",
                    help="skip the CUDA-graph replay timing (sdpa_graph_ms)")
    ap.add_argument("--key-std", type=float, default=4.0)
    ap.add_argument("--rotate-l2", type=float, default=4.0)
    ap.add_argument("--max-sets", type=int, default=256)
    ap.add_argument("--mem-cap-gb", type=float, default=100.0)
    ap.add_argument("--copy-gib", type=float, default=2.0)
    ap.add_argument("--quick", action="store_true",
                    help="contexts 32K,128K, batches 1,8, 20 reps (explicit options win)")
    # Options meant for adamas_cuda_bench alone (a run script passes the same extra arguments to
    # both) are ignored with a note.
    a, ignored = ap.parse_known_args()
    if ignored:
        log(f"sdpa_baseline: ignoring options it does not take: {' '.join(ignored)}")
    if a.contexts is None:
        a.contexts = [32768, 131072] if a.quick else [8192, 32768, 131072, 524288]
    if a.batches is None:
        a.batches = [1, 8]
    if a.reps is None:
        a.reps = 20 if a.quick else 50
    if not torch.cuda.is_available():
        raise SystemExit("sdpa_baseline: no CUDA device")
    t0 = time.time()
    dtype = torch.float16 if a.dtype == "f16" else torch.bfloat16
    gpu, l2 = gpu_summary()
    if not l2:
        l2 = 60 << 20
    _, total_mem = torch.cuda.mem_get_info()
    log(f"sdpa_baseline: torch {torch.__version__}, {gpu}; measuring copy bandwidth...")
    copy_gbps, copy_bytes = measure_copy(a.copy_gib)
    meta = {"date": datetime.date.today().isoformat(), "gpu": gpu, "copy_gbps": copy_gbps,
            "notes": [], "total_mem": total_mem}
    print(f"sdpa_baseline: torch {torch.__version__}, {gpu}")
    print(f"device-to-device copy {copy_gbps:.0f} GB/s (read + write, {copy_bytes / GIB:.1f} GiB "
          f"tensor); {a.dtype}, d={a.head_dim}; median of up to {a.reps} steps after "
          f"{a.warmup} warm-ups, K/V sets rotating over >= {a.rotate_l2:g}x L2")
    print(f"{'heads':>7} {'batch':>5} {'context':>8} | {'sdpa ms':>9} {'graph ms':>9} | "
          f"{'GB/s':>8} {'%copy':>6} | backend")
    fields = ["date", "gpu", "heads_q", "heads_kv", "batch", "context", "dtype", "sdpa_ms",
              "sdpa_gbps", "backend", "copy_gbps", "sets", "reps", "error", "sdpa_graph_ms"]
    with open(a.csv, "w", newline="") as f:
        meta["csv_file"] = f
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        rows = []
        grid = [(hq, hkv, b, c) for hq, hkv in a.heads for b in a.batches for c in a.contexts]
        for i, (hq, hkv, b, c) in enumerate(grid, 1):
            log(f"[{i}/{len(grid)}] heads {hq}/{hkv} batch {b} context {c}")
            t = time.time()
            try:
                run_config(hq, hkv, b, c, a, dtype, l2, writer, rows, meta)
            except torch.OutOfMemoryError as e:
                note = f"heads {hq}/{hkv} batch {b} context {c}: out of memory: {e}"
                log("  " + note.splitlines()[0])
                meta["notes"].append(note.splitlines()[0])
                torch.cuda.empty_cache()
            log(f"  done in {time.time() - t:.1f} s")
    for n in meta["notes"]:
        print("note:", n)
    print(f"wrote {a.csv}")
    log(f"sdpa_baseline: {time.time() - t0:.1f} s in all")


if __name__ == "__main__":
    main()
