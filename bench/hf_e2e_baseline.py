#!/usr/bin/env python3
"""End-to-end baseline: what a user would otherwise run, Hugging Face transformers with PyTorch
SDPA in bf16, prefill and greedy decode on a checkpoint directory (e.g. one written by
tools/model_check/make_random_checkpoint.py). Needs torch + transformers and a CUDA GPU.

  python3 bench/hf_e2e_baseline.py --model /tmp/llama3-8b --csv hf_e2e.csv
  python3 bench/hf_e2e_baseline.py --model /tmp/llama3-8b --contexts 8192 --batches 1 \
      --decode-steps 8 --csv quick.csv
  python3 bench/hf_e2e_baseline.py --model DIR --dry-run     # the grid and FLOP counts only

Per (batch B, context L), on random token ids:
  prefill  one forward over [B, L] with use_cache=True (a DynamicCache) and logits_to_keep=1
           (without it the logits alone, L x vocab in fp32, do not fit at 128K), timed with
           torch.cuda.synchronize() around it (median of --prefill-reps forwards, default 1);
           tokens/s = B*L / seconds.
           FLOPs counted: 2 * (matmul parameters of the layers) * B*L  (q, k, v, o, gate, up,
           down; the embedding is a lookup) + 2 * hidden * vocab * B (lm_head on the one kept
           position) + attention 4*L^2*head_dim*heads / 2 per layer and sequence (QK^T and PV,
           2 FLOPs per multiply-add, halved for the causal mask).
  decode   from the prefill's cache, steps of one token per sequence:
           model(input_ids=next, past_key_values=cache, use_cache=True, logits_to_keep=1),
           next = argmax; 3 untimed warm-up steps, then --decode-steps steps, each timed with
           synchronize; median ms per step. (DynamicCache appends with torch.cat, so each step
           also copies the whole cache: that is part of what transformers costs.)
  The KV cache is freed between points. A CUDA out-of-memory error is recorded and the run
  goes on; the device-to-device copy bandwidth (2 GiB tensor, bytes read + written / time,
  median of 10 CUDA-event-timed copies) is measured once and written on every row.

SDPA backend: PyTorch's own choice unless --sdpa-backend (both phases) or --decode-sdpa-backend
names some (e.g. flash); the CSV 'system' says which (hf-transformers-sdpa, -sdpa-flash,
-sdpa-decode-flash). Measured on torch 2.11
+ H200 (profiled, 1K-token cache): the default picks cuDNN attention for the decode step, and
cuDNN spends about 40 ms of CPU per step (the KV length is new at every step; the layers of one
step share the cost: ~1.3 ms per call at 32 layers, ~20 ms at 2), which dominates an 8B model's
step (8B, batch 1, 8K: 85 ms per step by default, 19 ms with flash), while for the prefill the
default (cuDNN) was faster than flash (511 vs 429 TFLOP/s at 32K). The strongest baseline is
--decode-sdpa-backend flash; report which one was run. The untimed chunked cache fill always
uses PyTorch's choice (flash takes no mask).

CSV status: ok | oom (nothing measured) | prefill-oom (the single-forward prefill ran out of
memory; the cache was then filled in chunks, untimed, and decode measured) | decode-oom
(prefill measured, decode ran out of memory) | skipped-tokens (B*L > --max-batch-tokens) |
skipped-memory (weights + KV cache of B*(L + decode steps) positions exceed the GPU's memory) |
error (another RuntimeError, e.g. no kernel of the --sdpa-backend list takes the inputs; logged).
"""
import argparse
import contextlib
import csv
import datetime
import gc
import json
import os
import statistics
import sys
import time

GIB = 1 << 30
WARMUP_STEPS = 3
FIELDS = ["system", "model", "dtype", "batch", "context", "prefill_tokens_per_s",
          "prefill_tflops", "decode_ms_per_token", "status", "date", "device", "torch",
          "transformers", "copy_gbps"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def int_list(s):
    out = [int(x) for x in s.split(",") if x.strip()]
    if not out or any(x < 1 for x in out):
        raise argparse.ArgumentTypeError("expected a comma-separated list of positive integers")
    return out


def model_shape(cfg):
    """The numbers the FLOP and memory estimates need, from a config.json dict (pure)."""
    H = cfg["num_attention_heads"]
    D = cfg["hidden_size"]
    return dict(layers=cfg["num_hidden_layers"], hidden=D, inter=cfg["intermediate_size"],
                heads=H, kv_heads=cfg.get("num_key_value_heads") or H,
                head_dim=cfg.get("head_dim") or D // H, vocab=cfg["vocab_size"],
                tied=bool(cfg.get("tie_word_embeddings", False)))


def layer_matmul_params(s):
    D, d = s["hidden"], s["head_dim"]
    return (D * s["heads"] * d          # q_proj
            + 2 * D * s["kv_heads"] * d  # k_proj, v_proj
            + s["heads"] * d * D         # o_proj
            + 3 * D * s["inter"])        # gate, up, down


def param_count(s):
    n = s["layers"] * (layer_matmul_params(s) + 2 * s["hidden"]) + s["vocab"] * s["hidden"]
    n += s["hidden"]  # final norm
    if not s["tied"]:
        n += s["vocab"] * s["hidden"]
    return n


def prefill_flops(s, batch, ctx):
    """FLOPs of one prefill of `batch` sequences of `ctx` tokens, logits for the last only."""
    matmul = 2 * s["layers"] * layer_matmul_params(s) * batch * ctx
    head = 2 * s["hidden"] * s["vocab"] * batch
    attn = s["layers"] * batch * (4 * ctx * ctx * s["head_dim"] * s["heads"]) // 2
    return matmul + head + attn


def kv_cache_bytes(s, batch, positions, elem_bytes=2):
    return 2 * s["layers"] * s["kv_heads"] * s["head_dim"] * elem_bytes * batch * positions


def plan(batches, contexts, max_batch_tokens):
    """[(batch, context, skip status or '')] in run order: by batch, then context (pure)."""
    return [(b, c, "skipped-tokens" if b * c > max_batch_tokens else "")
            for b in batches for c in contexts]


def fill_chunk(batch, ctx, requested):
    """Positions per forward when the cache must be filled in chunks: the SDPA mask of a chunk
    against the cache is batch x chunk x ctx booleans; keep it under 4 GiB (pure)."""
    if requested:
        return requested
    c = (1 << 32) // max(1, batch * ctx)
    return max(256, min(8192, c // 256 * 256))


def fmt_row(row):
    def f(x, spec):
        return format(x, spec) if isinstance(x, (int, float)) else "-"
    return "%6d %8d | %14s %9s | %10s | %s" % (
        row["batch"], row["context"], f(row["prefill_tokens_per_s"], ".0f"),
        f(row["prefill_tflops"], ".1f"), f(row["decode_ms_per_token"], ".2f"), row["status"])


def csv_row(row):
    out = {}
    for k in FIELDS:
        v = row.get(k, "")
        if isinstance(v, float):
            v = "%.6g" % v if k != "copy_gbps" else "%.1f" % v
        out[k] = v
    return out


# ---------------------------------------------------------------- torch from here on

def measure_copy(torch, gib=2.0, reps=10, warmup=3):
    n = int(gib * GIB)
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    src.fill_(1)
    dst = torch.empty_like(src)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(warmup):
        dst.copy_(src)
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start.record()
        dst.copy_(src)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1e-3)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n / statistics.median(times) / 1e9


def attempt(torch, fn):
    """(fn(), None), or (None, 'oom') after a CUDA out-of-memory error, (None, 'error') after
    another RuntimeError, once the failed call's tensors are freed (the traceback that held them
    is gone when the except block ends)."""
    try:
        return fn(), None
    except torch.OutOfMemoryError:
        pass
    except RuntimeError as e:  # e.g. cuBLAS failing to get its workspace, or no SDPA kernel
        text = (str(e).strip() or repr(e)).splitlines()[0][:300]
        log("  error: %s" % text)
        if "out of memory" not in text and "ALLOC_FAILED" not in text:
            gc.collect()
            torch.cuda.empty_cache()
            return None, "error"
    gc.collect()
    torch.cuda.empty_cache()
    return None, "oom"


SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math")


def sdpa_backends(s):
    """'default' (PyTorch's choice) -> [], else a comma-separated subset of SDPA_BACKENDS."""
    if s.strip() == "default":
        return []
    out = [x.strip() for x in s.split(",") if x.strip()]
    if not out or any(x not in SDPA_BACKENDS for x in out):
        raise argparse.ArgumentTypeError("expected default or a comma-separated subset of %s" %
                                         ",".join(SDPA_BACKENDS))
    return out


def system_name(attn, prefill_backends, decode_backends):
    """hf-transformers-sdpa, -sdpa-flash (both phases), -sdpa-decode-flash (decode only), ..."""
    name = "hf-transformers-" + attn
    name += "".join("-" + b for b in prefill_backends)
    if decode_backends != prefill_backends:
        name += "-decode-" + ("-".join(decode_backends) or "default")
    return name


def sdpa_context(torch, names):
    """The timed forwards run under this: PyTorch's own backend choice (names empty), or only
    the named SDPA backends (torch.nn.attention.sdpa_kernel)."""
    if not names:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    m = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
         "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
    return sdpa_kernel([m[n] for n in names])


def last_token(logits):
    return logits[:, -1, :].argmax(dim=-1, keepdim=True)


def run_point(torch, model, s, b, c, a, base):
    row = dict(base, batch=b, context=c, prefill_tokens_per_s="", prefill_tflops="",
               decode_ms_per_token="", status="ok")
    gen = torch.Generator(device="cuda")
    gen.manual_seed(b * 1000003 + c)
    ids = torch.randint(0, s["vocab"], (b, c), device="cuda", generator=gen)
    state = {}  # the cache and the next token ids live here so that a failure can drop them

    def prefill_once():
        state.clear()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with sdpa_context(torch, a.sdpa_backend):
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if not torch.isfinite(out.logits).all():
            log("  warning: non-finite prefill logits")
        state["next"], state["cache"] = last_token(out.logits), out.past_key_values
        return dt

    def prefill():
        times = [prefill_once() for _ in range(a.prefill_reps)]
        return statistics.median(times)

    def fill_chunked():
        state.clear()
        chunk = fill_chunk(b, c, a.fill_chunk)
        log("  filling the cache in chunks of %d positions" % chunk)
        cache, out = None, None
        for lo in range(0, c, chunk):
            out = model(input_ids=ids[:, lo:lo + chunk], past_key_values=cache, use_cache=True,
                        logits_to_keep=1)
            cache = out.past_key_values
        state["next"], state["cache"] = last_token(out.logits), cache
        torch.cuda.synchronize()

    def decode():
        cache, nxt, times = state["cache"], state["next"], []
        for i in range(WARMUP_STEPS + a.decode_steps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with sdpa_context(torch, a.decode_sdpa_backend):
                out = model(input_ids=nxt, past_key_values=cache, use_cache=True,
                            logits_to_keep=1)
            nxt = last_token(out.logits)
            torch.cuda.synchronize()
            if i >= WARMUP_STEPS:
                times.append(time.perf_counter() - t0)
            cache = out.past_key_values
            out = None
        return statistics.median(times) * 1e3

    have_cache = False
    if not a.decode_only:
        dt, err = attempt(torch, prefill)
        if err:
            state.clear()
            gc.collect()
            torch.cuda.empty_cache()
            row["status"] = err if a.prefill_only or err == "error" else "prefill-oom"
        else:
            have_cache = True
            row["prefill_tokens_per_s"] = b * c / dt
            row["prefill_tflops"] = prefill_flops(s, b, c) / dt / 1e12
            log("  prefill %.3f s" % dt)
    if not a.prefill_only and row["status"] != "error":
        if not have_cache:
            if a.decode_only and not a.fill_chunk:  # one forward, as a user would, if it fits
                _, err = attempt(torch, prefill_once)
                have_cache = err is None
            if not have_cache:
                state.clear()
                gc.collect()
                torch.cuda.empty_cache()
                _, err = attempt(torch, fill_chunked)
                have_cache = err is None
            if not have_cache:
                row["status"] = err
        if have_cache:
            ms, err = attempt(torch, decode)
            if err == "error":
                row["status"] = "error"
            elif err:
                row["status"] = "decode-oom" if row["status"] == "ok" else "oom"
            else:
                row["decode_ms_per_token"] = ms
                log("  decode %.2f ms/step" % ms)
    state.clear()
    ids = None
    gc.collect()
    torch.cuda.empty_cache()
    return row


def load_model(torch, transformers, path, attn):
    kw = dict(dtype=torch.bfloat16, attn_implementation=attn)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path, device_map="cuda", **kw)
    except (ImportError, ValueError, TypeError) as e:  # no accelerate, or an older API
        log("  device_map='cuda' failed (%s); loading on the CPU, then moving" % e)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, **kw).to("cuda")
    return model.eval()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="Hugging Face checkpoint directory")
    ap.add_argument("--contexts", type=int_list, default=int_list("8192,32768,131072"),
                    help="tokens per sequence (default 8192,32768,131072)")
    ap.add_argument("--batches", type=int_list, default=int_list("1,16"),
                    help="sequences per batch (default 1,16)")
    ap.add_argument("--decode-steps", type=int, default=32,
                    help="timed decode steps, after %d warm-up steps" % WARMUP_STEPS)
    ap.add_argument("--prefill-reps", type=int, default=1,
                    help="timed prefill forwards per point (median)")
    ap.add_argument("--csv", default="hf_e2e_baseline.csv")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--prefill-only", action="store_true")
    mode.add_argument("--decode-only", action="store_true",
                      help="fill the cache untimed, time decode only")
    ap.add_argument("--max-batch-tokens", type=int, default=1 << 20,
                    help="skip a point whose batch*context exceeds this (default 1048576)")
    ap.add_argument("--fill-chunk", type=int, default=0,
                    help="positions per forward when the cache is filled in chunks (untimed), "
                         "after a prefill runs out of memory; with --decode-only, giving it "
                         "fills in chunks instead of trying one forward first (default: the "
                         "largest of 256..8192 that keeps the SDPA mask under 4 GiB)")
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    ap.add_argument("--sdpa-backend", type=sdpa_backends, default=[],
                    help="restrict the timed forwards to these SDPA backends (comma list of %s;"
                         " default: PyTorch's own choice, which on torch 2.11 + H200 picks cuDNN "
                         "for decode, at a CPU cost of ~40 ms per step)" %
                         ",".join(SDPA_BACKENDS))
    ap.add_argument("--decode-sdpa-backend", type=sdpa_backends, default=None,
                    help="the same for the decode steps alone ('default' for PyTorch's "
                         "choice; default: as --sdpa-backend), e.g. --decode-sdpa-backend flash "
                         "keeps PyTorch's choice (cuDNN, faster) for the prefill")
    ap.add_argument("--copy-gib", type=float, default=2.0)
    ap.add_argument("--system", default=None, help="CSV 'system' (default hf-transformers-ATTN)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the grid, parameter and FLOP counts from config.json; no torch")
    a = ap.parse_args(argv)
    if a.decode_steps < 1 or a.prefill_reps < 1 or a.fill_chunk < 0:
        ap.error("--decode-steps and --prefill-reps must be >= 1, --fill-chunk >= 0")
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    s = model_shape(cfg)
    model_name = os.path.basename(os.path.normpath(a.model))
    if a.decode_sdpa_backend is None:
        a.decode_sdpa_backend = a.sdpa_backend
    if (a.sdpa_backend or a.decode_sdpa_backend) and a.attn != "sdpa":
        ap.error("--sdpa-backend and --decode-sdpa-backend need --attn sdpa")
    system = a.system or system_name(a.attn, a.sdpa_backend, a.decode_sdpa_backend)
    points = plan(a.batches, a.contexts, a.max_batch_tokens)
    log("hf_e2e_baseline: %s, %.3f B parameters, %d points" % (model_name, param_count(s) / 1e9,
                                                              len(points)))
    if a.dry_run:
        for b, c, skip in points:
            print("batch %3d context %7d: prefill %.1f TFLOP, KV cache %.2f GiB%s" % (
                b, c, prefill_flops(s, b, c) / 1e12,
                kv_cache_bytes(s, b, c + WARMUP_STEPS + a.decode_steps) / GIB,
                ", " + skip if skip else ""))
        return 0

    import torch
    import transformers
    if not torch.cuda.is_available():
        raise SystemExit("hf_e2e_baseline: no CUDA device")
    device = torch.cuda.get_device_name(0)
    log("hf_e2e_baseline: torch %s, transformers %s, %s; measuring copy bandwidth..." % (
        torch.__version__, transformers.__version__, device))
    copy_gbps = measure_copy(torch, a.copy_gib)
    log("loading %s (bf16, attn %s)..." % (a.model, a.attn))
    t0 = time.perf_counter()
    model = load_model(torch, transformers, a.model, a.attn)
    weight_bytes = torch.cuda.memory_allocated()
    log("  loaded in %.1f s, %.2f GiB on the GPU" % (time.perf_counter() - t0, weight_bytes / GIB))
    _, total_mem = torch.cuda.mem_get_info()
    base = dict(system=system, model=model_name, dtype="bf16",
                date=datetime.date.today().isoformat(), device=device, torch=torch.__version__,
                transformers=transformers.__version__, copy_gbps=copy_gbps)

    with torch.inference_mode():
        # Untimed warm-up (CUDA context, cuBLAS handles, kernels) on a short prompt.
        warm = torch.randint(0, s["vocab"], (1, 256), device="cuda")
        with sdpa_context(torch, a.sdpa_backend):
            out = model(input_ids=warm, use_cache=True, logits_to_keep=1)
        with sdpa_context(torch, a.decode_sdpa_backend):
            out = model(input_ids=last_token(out.logits), past_key_values=out.past_key_values,
                        use_cache=True, logits_to_keep=1)
        out = warm = None
        gc.collect()
        torch.cuda.empty_cache()

        print("hf_e2e_baseline: %s (%.3f B parameters), bf16, attn %s (SDPA backends: prefill "
              "%s, decode %s); %s; torch %s, transformers %s" % (
                  model_name, param_count(s) / 1e9, a.attn,
                  ",".join(a.sdpa_backend) or "PyTorch's choice",
                  ",".join(a.decode_sdpa_backend) or "PyTorch's choice", device,
                  torch.__version__, transformers.__version__))
        print("device-to-device copy %.0f GB/s (read + write, %.1f GiB tensor, median of 10)" % (
            copy_gbps, a.copy_gib))
        print("decode: median of %d steps after %d warm-ups; prefill: one forward%s" % (
            a.decode_steps, WARMUP_STEPS,
            "" if a.prefill_reps == 1 else ", median of %d" % a.prefill_reps))
        print("%6s %8s | %14s %9s | %10s | %s" % ("batch", "context", "prefill tok/s",
                                                  "TFLOP/s", "decode ms", "status"), flush=True)
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            for i, (b, c, skip) in enumerate(points, 1):
                log("[%d/%d] batch %d context %d" % (i, len(points), b, c))
                need = weight_bytes + kv_cache_bytes(s, b, c + WARMUP_STEPS + a.decode_steps)
                if not skip and need > total_mem:
                    skip = "skipped-memory"
                    log("  weights + KV cache need %.1f GiB, the GPU has %.1f GiB" % (
                        need / GIB, total_mem / GIB))
                t = time.perf_counter()
                if skip:
                    row = dict(base, batch=b, context=c, prefill_tokens_per_s="",
                               prefill_tflops="", decode_ms_per_token="", status=skip)
                else:
                    row = run_point(torch, model, s, b, c, a, base)
                log("  done in %.1f s" % (time.perf_counter() - t))
                w.writerow(csv_row(row))
                f.flush()
                print(fmt_row(row), flush=True)
    print("wrote", a.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
