#!/usr/bin/env python3
"""PyTorch baseline of the GPU decode benchmark: one decode step of one layer through
torch.nn.functional.scaled_dot_product_attention, every SDPA backend PyTorch offers that takes
the inputs, on the grid of bench/cuda_decode_bench.cc (adamas_cuda_bench). The baseline is the
fastest of them ("the fastest SDPA backend").

Per (heads q/kv, batch, context): q [B, Hq, 1, d], k/v [B, Hkv, L, d] f16 (or bf16), contiguous,
random normal. GQA (Hq != Hkv) passes enable_gqa=True (K/V are never repeated: that would read
Hq/Hkv times the bytes). Enough K/V sets rotate that one rotation reads at least 4x the L2
(memory capped), so no step finds its data in the L2.

Backends, each timed on the same K/V sets: cuDNN (SDPBackend.CUDNN_ATTENTION), flash
(FLASH_ATTENTION), memory-efficient (EFFICIENT_ATTENTION), each forced with sdpa_kernel(...), and
the default selection (no sdpa_kernel context; the backend it picks is recorded as
default_choice, from a private API, best effort). MATH is not timed (it materializes the scores
and, for GQA, repeats K/V) unless --with-math. Per backend: median of CUDA-event times after
warm-up, of eager calls and (unless --no-graph) of the call replayed as a CUDA graph, captured
under the same sdpa_kernel(...) context as the eager timing (one graph per K/V set). A backend
that refuses the inputs (RuntimeError; SDPA's warnings say why), runs out of memory, fails graph
capture or gives non-finite output is recorded in `error` and not timed (or not counted) further;
the others go on. A device-to-device copy of a 2 GiB tensor (bytes read + written / time) is
measured in the same run. Options meant for adamas_cuda_bench alone are ignored with a note, so
that a run script can pass the same extra arguments to both.

CSV, one row per grid point:
  sdpa_ms, sdpa_gbps, backend     the fastest backend's eager median (min over the backends that
                                  worked), its K/V read rate and name (cudnn, flash, efficient,
                                  math, or default:NAME when the default selection was fastest);
  sdpa_graph_ms, graph_backend    the fastest graph replay over the backends, and its backend
                                  (possibly not the fastest eager one);
  cudnn_ms, cudnn_graph_ms, flash_ms, flash_graph_ms, efficient_ms, efficient_graph_ms,
  default_ms, default_graph_ms    each backend's eager and graph medians (math_ms, math_graph_ms
                                  too with --with-math); empty where not measured;
  default_choice                  the backend the default selection picked;
  error                           per-backend failures, "flash: ...; efficient: ...";
  date, gpu, heads_q, heads_kv, batch, context, dtype, copy_gbps, sets (K/V sets rotated),
  reps (timed steps of the fastest eager backend).
The CSV is written to a temporary file beside it, row by row, and renamed over --csv when the
grid is done (points skipped for memory are notes, not failures); if the script dies, an older
--csv is left as it was. stdout: per point, each backend's eager and graph ms and the fastest;
progress on stderr.

Usage: python3 bench/sdpa_baseline.py --csv sdpa.csv [--quick] [--contexts 8192,32768]
       [--batches 1,8] [--heads 32/32,32/8] [--no-graph] [--with-math]
Then:  python3 bench/plot_cuda_bench.py ours.csv sdpa.csv out.png
"""
import argparse
import contextlib
import csv
import datetime
import math
import os
import signal
import statistics
import sys
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

GIB = 1024**3

# (column prefix, SDPBackend member name); "default" is the selection without sdpa_kernel.
FORCED_BACKENDS = [("cudnn", "CUDNN_ATTENTION"), ("flash", "FLASH_ATTENTION"),
                   ("efficient", "EFFICIENT_ATTENTION")]
SHORT_NAMES = {"MATH": "math", "FLASH_ATTENTION": "flash", "EFFICIENT_ATTENTION": "efficient",
               "CUDNN_ATTENTION": "cudnn", "OVERRIDEABLE": "overrideable", "ERROR": "error"}


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
    for name, short in SHORT_NAMES.items():
        b = getattr(SDPBackend, name, None)
        if b is not None:
            try:
                names[int(b.value)] = short
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


def backend_list(with_math):
    """[(name, SDPBackend member or None for the default selection, or a string saying why the
    backend is missing from this torch)]."""
    out = []
    for name, member in FORCED_BACKENDS + ([("math", "MATH")] if with_math else []):
        b = getattr(SDPBackend, member, None)
        out.append((name, b if b is not None else f"SDPBackend.{member} not in torch "
                    f"{torch.__version__}"))
    out.append(("default", None))
    return out


def kernel_ctx(backend):
    return contextlib.nullcontext() if backend is None else sdpa_kernel(backend)


def failure(e, caught):
    """The first line of e, with the reasons SDPA gave in warnings (it says why each backend was
    rejected in warnings, then raises "No available kernel")."""
    text = "out of memory" if isinstance(e, torch.OutOfMemoryError) else first_line(e)
    reasons = [first_line(w.message) for w in caught]
    if reasons:
        text += " (" + "; ".join(dict.fromkeys(reasons)) + ")"
    return text


def time_graphs(sets, kwargs, backend, a):
    """Median ms of one SDPA call replayed as a CUDA graph (one graph per K/V set, captured after
    the eager runs, under the same sdpa_kernel context): device time without launch gaps.
    Returns (ms, None) or (None, why capture or replay failed)."""
    graphs = []
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for q, k, v in sets:
                g = torch.cuda.CUDAGraph()
                with kernel_ctx(backend), torch.cuda.graph(g):
                    F.scaled_dot_product_attention(q, k, v, **kwargs)
                graphs.append(g)
        ms, _ = event_time(lambda i: graphs[i % len(graphs)].replay(), a.reps, a.warmup,
                           a.min_reps, a.point_ms)
        return ms, None
    except RuntimeError as e:
        return None, "CUDA graph: " + failure(e, caught)
    finally:
        graphs.clear()
        torch.cuda.empty_cache()


def time_backend(name, backend, sets, kwargs, a, where, meta):
    """Eager and graph medians of one backend: {"ms", "graph_ms", "reps", "errors"}."""
    res = {"ms": None, "graph_ms": None, "reps": 0, "errors": []}
    if isinstance(backend, str):  # not in this torch
        res["errors"].append(backend)
        return res
    nsets = len(sets)

    def fn(i):
        q, k, v = sets[i % nsets]
        return F.scaled_dot_product_attention(q, k, v, **kwargs)

    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught, kernel_ctx(backend):
            warnings.simplefilter("always")
            ms, reps = event_time(fn, a.reps, a.warmup, a.min_reps, a.point_ms)
            finite = bool(torch.isfinite(fn(0)).all())
    except RuntimeError as e:  # refused these inputs, out of memory, or a real failure
        res["errors"].append(failure(e, caught))
        torch.cuda.empty_cache()
        return res
    if not finite:
        res["errors"].append("non-finite output (not counted)")
        meta["notes"].append(f"{where}: {name}: non-finite output, not counted")
        return res
    res["ms"], res["reps"] = ms, reps
    if a.graph:
        res["graph_ms"], why = time_graphs(sets, kwargs, backend, a)
        if why:
            res["errors"].append(why)
    return res


def fmt_ms(v, width=9):
    return f"{v:{width}.3f}" if v is not None else f"{'-':>{width}}"


def run_config(hq, hkv, batch, ctx, a, dtype, l2, writer, rows, meta):
    d = a.head_dim
    esize = torch.finfo(dtype).bits // 8
    set_bytes = 2 * batch * hkv * ctx * d * esize  # K + V of one set
    where = f"heads {hq}/{hkv} batch {batch} context {ctx}"
    free, _ = torch.cuda.mem_get_info()
    budget = min(free - 2 * GIB - 0.02 * meta["total_mem"], a.mem_cap_gb * 1e9)
    fit = int(budget // set_bytes) if budget > 0 else 0
    if fit < 1:
        note = f"{where}: skipped, needs {set_bytes / GIB:.2f} GiB, {free / GIB:.2f} GiB free"
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
    kwargs = {"enable_gqa": True} if gqa else {}

    results, errors = {}, []
    choice = default_backend(*sets[0], gqa)
    for name, backend in a.backends:
        t = time.time()
        res = time_backend(name, backend, sets, kwargs, a, where, meta)
        results[name] = res
        for e in res["errors"]:
            errors.append(f"{name}: {e}")
            log(f"  {name}: {e}")
        if res["ms"] is not None:
            log(f"  {name}: eager {res['ms']:.3f} ms, graph "
                f"{fmt_ms(res['graph_ms'], 0).strip()} ms ({time.time() - t:.1f} s)")

    def label(name):
        return choice if name == "default" else name

    eager = [(r["ms"], n) for n, r in results.items() if r["ms"] is not None]
    graph = [(r["graph_ms"], n) for n, r in results.items() if r["graph_ms"] is not None]
    ms, best = min(eager) if eager else (None, None)
    graph_ms, best_g = min(graph) if graph else (None, None)
    bytes_read = batch * hkv * ctx * d * esize * 2
    gbps = bytes_read / (ms * 1e-3) / 1e9 if ms else None

    def cell(v):
        return f"{v:.5f}" if v is not None else ""

    row = {
        "date": meta["date"], "gpu": meta["gpu"], "heads_q": hq, "heads_kv": hkv,
        "batch": batch, "context": ctx, "dtype": a.dtype,
        "sdpa_ms": cell(ms), "sdpa_gbps": f"{gbps:.1f}" if gbps else "",
        "backend": label(best) if best else "none", "copy_gbps": f"{meta['copy_gbps']:.1f}",
        "sets": nsets, "reps": results[best]["reps"] if best else 0, "error": "; ".join(errors),
        "sdpa_graph_ms": cell(graph_ms), "graph_backend": label(best_g) if best_g else "",
        "default_choice": choice.partition(":")[2],
    }
    for name, _ in a.backends:
        row[f"{name}_ms"] = cell(results[name]["ms"])
        row[f"{name}_graph_ms"] = cell(results[name]["graph_ms"])
    writer.writerow(row)
    meta["csv_file"].flush()
    rows.append(row)

    # stdout: one block per point.
    print(f"\nheads {hq}/{hkv}, batch {batch}, context {ctx} ({nsets} K/V set(s) of "
          f"{set_bytes / GIB:.2f} GiB)")
    print(f"  {'backend':<18} {'eager ms':>9} {'graph ms':>9}")
    for name, _ in a.backends:
        r = results[name]
        marks = [m for m, b in (("fastest eager", best), ("fastest graph", best_g)) if b == name]
        if r["errors"]:
            marks.append("; ".join(r["errors"])[:90])
        print(f"  {label(name):<18} {fmt_ms(r['ms'])} {fmt_ms(r['graph_ms'])}"
              + ("  " + ", ".join(marks) if marks else ""), flush=True)
    if ms is not None:
        print(f"  fastest: eager {ms:.3f} ms ({label(best)}, {gbps:.0f} GB/s = "
              f"{100 * gbps / meta['copy_gbps']:.0f}% of copy)"
              + (f", graph {graph_ms:.3f} ms ({label(best_g)})" if graph_ms else ""), flush=True)
    else:
        print("  fastest: none worked", flush=True)
    sets.clear()
    torch.cuda.empty_cache()


def print_summary(rows, copy_gbps):
    print("\nfastest SDPA backend per point (eager; graph replay)")
    print(f"{'heads':>7} {'batch':>5} {'context':>8} | {'eager ms':>9} {'backend':<16} | "
          f"{'graph ms':>9} {'backend':<16} | {'GB/s':>6} {'%copy':>5}")
    for r in rows:
        ms, g = r["sdpa_ms"], r["sdpa_graph_ms"]
        gbps = float(r["sdpa_gbps"]) if r["sdpa_gbps"] else None
        print(f"{r['heads_q']:>3}/{r['heads_kv']:<3} {r['batch']:>5} {r['context']:>8} | "
              f"{fmt_ms(float(ms) if ms else None)} {r['backend']:<16} | "
              f"{fmt_ms(float(g) if g else None)} {r['graph_backend'] or '-':<16} | "
              + (f"{gbps:6.0f} {100 * gbps / copy_gbps:4.0f}%" if gbps else f"{'-':>6} {'-':>5}"))


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
                    help="stop repeating a backend at a point (after --min-reps) once this much "
                    "was timed")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-graph", dest="graph", action="store_false",
                    help="skip the CUDA-graph replay timings (*_graph_ms)")
    ap.add_argument("--with-math", action="store_true",
                    help="time the MATH backend too (materializes the scores; math_ms columns)")
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
    a.backends = backend_list(a.with_math)
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
    names = [n for n, _ in a.backends]
    print(f"sdpa_baseline: torch {torch.__version__}, {gpu}")
    print(f"device-to-device copy {copy_gbps:.0f} GB/s (read + write, {copy_bytes / GIB:.1f} GiB "
          f"tensor); {a.dtype}, d={a.head_dim}; backends {', '.join(names)}; median of up to "
          f"{a.reps} steps after {a.warmup} warm-ups, eager"
          + (" and CUDA graph" if a.graph else "")
          + f", K/V sets rotating over >= {a.rotate_l2:g}x L2")
    fields = ["date", "gpu", "heads_q", "heads_kv", "batch", "context", "dtype", "sdpa_ms",
              "sdpa_gbps", "backend", "copy_gbps", "sets", "reps", "error", "sdpa_graph_ms",
              "graph_backend"]
    for n in names:
        fields += [f"{n}_ms", f"{n}_graph_ms"]
    fields.append("default_choice")

    # Rows go to a temporary file beside --csv as they are measured; it replaces --csv only once
    # the grid is done, so a run that dies leaves an older CSV as it was.
    target = os.path.abspath(a.csv)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                               dir=os.path.dirname(target))
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    # `timeout` and the like send SIGTERM: unwind (removing the temporary file) as for an error.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    rows = []
    try:
        with os.fdopen(fd, "w", newline="") as f:
            meta["csv_file"] = f
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
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
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        log(f"sdpa_baseline: failed; {a.csv} left as it was")
        raise
    print_summary(rows, copy_gbps)
    for n in meta["notes"]:
        print("note:", n)
    print(f"wrote {a.csv}")
    log(f"sdpa_baseline: {time.time() - t0:.1f} s in all")


if __name__ == "__main__":
    main()
