#!/usr/bin/env python3
"""Joins the GPU benchmark's CSV (adamas_cuda_bench) with the PyTorch SDPA baseline's
(bench/sdpa_baseline.py) on (heads_q, heads_kv, batch, context) and writes:

  OUT.png          the paper-style figure: per heads config and batch, per context length, full
                   attention (the fastest SDPA backend and our dense, side by side) against
                   Adamas' stacked stages (encode + estimate, top-k, sparse attention) at one
                   budget, with the speedup over the fastest SDPA backend on top;
  OUT-budgets.png  speedup over the fastest SDPA backend against the budget, one line per context
                   (--no-budgets: off);
  OUT.md           (or --md PATH) a Markdown table at that budget (the fastest SDPA backend's ms
                   with its name, eager and CUDA graph), each SDPA backend's times, and one line
                   per issue target, met or not met, with the figure; also printed to stdout.

"The fastest SDPA backend" is sdpa_baseline.py's sdpa_ms / sdpa_graph_ms: the minimum over the
backends it timed (cuDNN, flash, memory-efficient, the default selection), eager and graph taken
separately; `backend` / `graph_backend` name them. An older sdpa_baseline.py CSV (flash only, no
per-backend columns) still works: its one backend is shown the same way.

Usage: python3 bench/plot_cuda_bench.py ours.csv sdpa.csv OUT.png [--budget 256] [--md OUT.md]
       (or --png OUT.png; --scale relative|log|ms; --gqa per-head|shared)
The figures need matplotlib (Debian: python3-matplotlib; /usr/bin/python3 here, python3 on the GPU
machine); without it they are skipped with a note and the Markdown is still written (give --md
or the PNG name it is derived from).
"""
import argparse
import csv
import math
import os
import sys
from collections import defaultdict

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
except ImportError:
    matplotlib = plt = None

# The targets. Speedups and the dense ratio compare against the fastest SDPA backend,
# CUDA-graph timings on both sides first (eager shown too); speedups at budget 256.
TARGET_BUDGET = 256
# (kind, batch, context, x faster than the fastest SDPA backend); GQA: per-head selection.
SPEEDUP_TARGETS = [("MHA", 1, 32768, 6.0), ("MHA", 1, 131072, 10.0),
                   ("GQA", 1, 32768, 3.0), ("GQA", 1, 131072, 6.0),
                   ("MHA", 8, 131072, 12.0), ("GQA", 8, 131072, 6.0)]
DENSE_RATIO_TARGET = 1.15  # our dense ms / fastest SDPA ms at most, every context
DENSE_BATCHES = (1, 8)
ESTIMATE_PCT_TARGET = 80.0  # estimate kernel, % of the measured copy bandwidth
# (kind, batch, from this context on)
ESTIMATE_TARGETS = [("MHA", 1, 32768), ("GQA", 1, 131072)]
# sdpa_baseline.py's per-backend columns: (column prefix, label)
SDPA_BACKENDS = [("cudnn", "cuDNN"), ("flash", "flash"), ("efficient", "efficient"),
                 ("math", "math"), ("default", "default")]

SDPA_LABEL = "fastest SDPA backend"

STAGES = [("encode_ms", "encode query", "#c6dbef"),
          ("estimate_ms", "estimate (code distances)", "#4292c6"),
          ("topk_ms", "top-k", "#fd8d3c"),
          ("attention_ms", "sparse attention", "#31a354")]


def num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def ctx_name(c):
    return f"{c // 1024}K" if c % 1024 == 0 else str(c)


def fmt_ms(v):
    if v is None:
        return "n/a"
    return f"{v:.3f}" if v < 10 else f"{v:.2f}"


def fmt_x(v):
    return "n/a" if v is None else f"{v:.1f}×"


def kind_of(hq, hkv):
    return "MHA" if hq == hkv else "GQA"


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def key_of(r):
    return (int(r["heads_q"]), int(r["heads_kv"]), int(r["batch"]), int(r["context"]))


def sdpa_of(r):
    """The fastest SDPA backend of one sdpa_baseline.py row: eager and graph ms and names. An
    older CSV has no graph_backend: its graph was captured with the eager backend."""
    if r is None:
        return {"ms": None, "graph_ms": None, "backend": "", "graph_backend": ""}
    ms, graph_ms = num(r.get("sdpa_ms")), num(r.get("sdpa_graph_ms"))
    backend = r.get("backend", "") if ms else ""
    graph_backend = (r.get("graph_backend") or r.get("backend", "")) if graph_ms else ""
    return {"ms": ms, "graph_ms": graph_ms, "backend": backend, "graph_backend": graph_backend}


def with_name(ms, name):
    return fmt_ms(ms) + (f" ({name})" if ms is not None and name else "")


def plot_stages(a, keys, ours, sdpa, heads_cfgs, batches, gpu, dtype):
    """The paper-style figure: full attention against Adamas' stacked stages."""
    # relative (default): every context's bars divided by its SDPA time (our dense where SDPA is
    # missing), linear axis, so the stacked stages keep their proportions and the Adamas bar's
    # height is 1 / speedup; absolute times are written under the bars. log / ms: milliseconds.
    nrows, ncols = len(heads_cfgs), len(batches)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.1 * nrows), squeeze=False)
    w = 0.27
    for i, (hq, hkv) in enumerate(heads_cfgs):
        for j, b in enumerate(batches):
            ax = axes[i][j]
            ks = [k for k in keys if k[:3] == (hq, hkv, b)]
            if not ks:
                ax.set_visible(False)
                continue
            x = list(range(len(ks)))
            ref = [sdpa_of(sdpa.get(k)) for k in ks]
            sd = [s["ms"] for s in ref]
            dn = [num(ours[k]["dense_ms"]) for k in ks]
            if a.scale == "relative":
                norm = [r or d or 1.0 for r, d in zip(sd, dn)]
            else:
                norm = [1.0] * len(ks)
            ax.bar([p - w for p in x], [(v or 0) / n for v, n in zip(sd, norm)], w,
                   color="#bdbdbd",
                   label="full: PyTorch SDPA, the fastest backend (named below the bars)")
            ax.bar(x, [(v or 0) / n for v, n in zip(dn, norm)], w, color="#636363",
                   label="full: our dense flash-decoding")
            bottom = [0.0] * len(ks)
            for col, label, color in STAGES:
                vals = [(num(ours[k][col]) or 0.0) / n for k, n in zip(ks, norm)]
                ax.bar([p + w for p in x], vals, w, bottom=bottom, color=color,
                       label=f"Adamas: {label}")
                bottom = [s + v for s, v in zip(bottom, vals)]
            if a.scale == "relative":
                labels = [f"{ctx_name(k[3])}\n{fmt_ms(s['ms'])} ms\n{s['backend']}" if s["ms"]
                          else f"{ctx_name(k[3])}\n({fmt_ms(d)} ms)*" for k, s, d in
                          zip(ks, ref, dn)]
                top = max([1.0] + bottom + [(v or 0) / n for v, n in zip(dn, norm)])
                ax.set_ylim(0, 1.2 * top)
            else:
                labels = [f"{ctx_name(k[3])}\n{s['backend']}" if s["ms"] else ctx_name(k[3])
                          for k, s in zip(ks, ref)]
            for p, k, s, top, n in zip(x, ks, ref, bottom, norm):
                total = num(ours[k]["sparse_ms"])
                dense = num(ours[k]["dense_ms"])
                if not total:
                    continue
                txt = (f"{s['ms'] / total:.1f}×" if s["ms"] else
                       f"{dense / total:.1f}×*" if dense else "")
                sp_g = num(ours[k].get("sparse_graph_ms"))
                if s["graph_ms"] and sp_g:
                    txt += f"\ng: {s['graph_ms'] / sp_g:.1f}×"
                y = top or total / n
                ax.text(p + w, y * 1.15 if a.scale == "log" else y + 0.01 * ax.get_ylim()[1], txt,
                        ha="center", va="bottom", fontsize=7, linespacing=1.0)
            ax.set_xticks(x, labels)
            if a.scale == "log":
                ax.set_yscale("log")
                vals = [v for v in sd + dn if v] + \
                    [num(ours[k][c]) for k in ks for c, _, _ in STAGES if num(ours[k][c])]
                ax.set_ylim(min(vals) / 2, max(vals) * 3)
            for p, v in zip(x, sd):
                if v is None:
                    ax.text(p - w, ax.get_ylim()[0], " SDPA n/a", ha="center", va="bottom",
                            fontsize=7, rotation=90)
            ax.set_title(f"{hq} q / {hkv} KV heads, batch {b}", fontsize=9)
            ax.set_xlabel("context length" + (f" ({SDPA_LABEL}: ms, name)"
                                              if a.scale == "relative" else ""), fontsize=8)
            if j == 0:
                ax.set_ylabel(f"time / {SDPA_LABEL} time" if a.scale == "relative"
                              else "ms per decode step (one layer)", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(axis="y", which="major", alpha=0.3)
    handles, labels = next(ax for row in axes for ax in row if ax.get_visible()) \
        .get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(a.title or f"Decode attention of one layer, d=128, {dtype}, on {gpu}: Adamas "
                 f"(budget {a.budget}) vs full attention\nbars: eager launches; speedup over the "
                 f"{SDPA_LABEL} on top (g: both timed as CUDA graph replays; ×* = over our dense "
                 f"where SDPA is missing)", fontsize=9)
    fig.tight_layout(rect=(0, 0.09 if nrows == 1 else 0.06, 1, 0.95))
    fig.savefig(a.png, dpi=130)
    plt.close(fig)


def plot_budgets(a, ours_all, sdpa, heads_cfgs, batches, gpu):
    """Speedup over the fastest SDPA backend against the budget; CUDA-graph timings where every
    point has them, else eager. Returns the path written, or None."""
    pts = []
    for r in ours_all:
        k = key_of(r)
        s = sdpa_of(sdpa.get(k))
        pts.append((k, int(r["budget"]), s["ms"], num(r["sparse_ms"]), s["graph_ms"],
                    num(r.get("sparse_graph_ms"))))
    eager = [p for p in pts if p[2] and p[3]]
    graph = [p for p in pts if p[4] and p[5]]
    use_graph = bool(graph) and len(graph) >= len(eager)
    by_panel = defaultdict(lambda: defaultdict(list))
    for k, budget, ref, sp, ref_g, sp_g in (graph if use_graph else eager):
        by_panel[k[:3]][k[3]].append((budget, ref_g / sp_g if use_graph else ref / sp))
    if not by_panel:
        return None
    timing = "CUDA graph replays" if use_graph else "eager launches"
    contexts = sorted({c for lines in by_panel.values() for c in lines})
    colors = {c: f"C{i % 10}" for i, c in enumerate(contexts)}  # one colour per context
    nrows, ncols = len(heads_cfgs), len(batches)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for i, (hq, hkv) in enumerate(heads_cfgs):
        for j, b in enumerate(batches):
            ax = axes[i][j]
            lines = by_panel.get((hq, hkv, b))
            if not lines:
                ax.set_visible(False)
                continue
            for c in sorted(lines):
                line = sorted(lines[c])
                ax.plot([p[0] for p in line], [p[1] for p in line], marker="o", ms=3,
                        color=colors[c], label=ctx_name(c))
            ax.axhline(1.0, color="#888", lw=0.8)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            budgets = sorted({p[0] for line in lines.values() for p in line})
            ax.set_xticks(budgets, [str(v) for v in budgets])
            ax.minorticks_off()
            ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(10, subs=(1, 2, 5)))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
            ax.set_title(f"{hq} q / {hkv} KV heads, batch {b}", fontsize=9)
            ax.set_xlabel("budget (tokens)", fontsize=8)
            if j == 0:
                ax.set_ylabel(f"speedup over the {SDPA_LABEL}", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7, title="context", title_fontsize=7)
    fig.suptitle(f"Adamas speedup over the {SDPA_LABEL} (PyTorch) per budget\n{timing} on both "
                 f"sides — {gpu}", fontsize=9)
    fig.tight_layout()
    stem, ext = os.path.splitext(a.png)
    out = f"{stem}-budgets{ext or '.png'}"
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ours", help="adamas_cuda_bench CSV")
    ap.add_argument("sdpa", help="sdpa_baseline.py CSV (may be missing rows)")
    ap.add_argument("png", nargs="?", help="output PNG (or --png)")
    ap.add_argument("--png", dest="png_opt", default=None, help="output PNG")
    ap.add_argument("--budget", type=int, default=TARGET_BUDGET)
    ap.add_argument("--gqa", default="per-head", help="which GQA selection rows to use")
    ap.add_argument("--md", default=None, help="Markdown output (default: PNG name with .md)")
    ap.add_argument("--no-budgets", action="store_true", help="skip the speedup-vs-budget PNG")
    ap.add_argument("--scale", choices=["relative", "log", "ms"], default="relative",
                    help="y axis: time / SDPA time (default), log ms, or linear ms")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    a.png = a.png_opt or a.png
    if not a.png and not a.md:
        ap.error("give the output PNG (positional or --png) or --md")

    raw = load(a.ours)
    # MHA rows have one selection mode only (the bench writes them as per-head).
    ours_all = [r for r in raw if r.get("gqa", "") in (a.gqa, "")
                or (r["heads_q"] == r["heads_kv"] and r.get("gqa") == "per-head")]
    if not ours_all:
        raise SystemExit(f"no rows with gqa={a.gqa} in {a.ours}")
    sdpa = {}
    if os.path.exists(a.sdpa):
        for r in load(a.sdpa):
            sdpa[key_of(r)] = r
    else:
        print(f"note: {a.sdpa} not found; SDPA columns are n/a", file=sys.stderr)
    ours = {key_of(r): r for r in ours_all if int(r["budget"]) == a.budget}
    if not ours:
        raise SystemExit(f"no rows with budget {a.budget} in {a.ours}")
    keys = sorted(ours, key=lambda k: (-k[1], k[0], k[2], k[3]))
    panels = sorted({(k[0], k[1], k[2]) for k in keys}, key=lambda p: (-p[1], p[2]))
    heads_cfgs = sorted({(p[0], p[1]) for p in panels}, key=lambda h: -h[1])
    batches = sorted({p[2] for p in panels})
    first = ours[keys[0]]
    gpu = first.get("gpu", "")
    dtype = first.get("dtype", "")

    # ---- figures ------------------------------------------------------------------------------
    written = []
    if a.png and plt is None:
        print("note: matplotlib is not installed: figures skipped (Debian: python3-matplotlib)",
              file=sys.stderr)
    elif a.png:
        plot_stages(a, keys, ours, sdpa, heads_cfgs, batches, gpu, dtype)
        written.append(a.png)
        if not a.no_budgets:
            out = plot_budgets(a, ours_all, sdpa, heads_cfgs, batches, gpu)
            if out:
                written.append(out)

    # ---- Markdown summary --------------------------------------------------------------------
    # Two timings where both CSVs have them: eager (each launch issued by the host, what the
    # stage breakdown uses) and graph (the whole step replayed as a CUDA graph: device time
    # without the host's launch gaps, as a serving engine's captured decode step runs). The
    # issue's targets compare graph timings on both sides first.
    copy = num(first.get("copy_gbps"))
    sdpa_copy = next((num(r.get("copy_gbps")) for r in sdpa.values() if r.get("copy_gbps")), None)
    per_backend = [(c, label) for c, label in SDPA_BACKENDS
                   if any(f"{c}_ms" in r for r in sdpa.values())]
    results = {}
    for k in keys:
        r = ours[k]
        s = sdpa_of(sdpa.get(k))
        ref, ref_g = s["ms"], s["graph_ms"]
        dn, sp = num(r["dense_ms"]), num(r["sparse_ms"])
        dn_g, sp_g = num(r.get("dense_graph_ms")), num(r.get("sparse_graph_ms"))
        results[k] = {
            "sdpa": ref, "dense": dn, "sparse": sp, "sdpa_g": ref_g, "dense_g": dn_g,
            "sparse_g": sp_g, "backend": s["backend"], "backend_g": s["graph_backend"],
            "ratio": dn / ref if ref and dn else None,
            "ratio_g": dn_g / ref_g if ref_g and dn_g else None,
            "speedup": ref / sp if ref and sp else None,
            "speedup_g": ref_g / sp_g if ref_g and sp_g else None,
            "est_pct": num(r["estimate_pct_copy"])}
    has_graph = any(v["speedup_g"] is not None or v["ratio_g"] is not None
                    for v in results.values())
    md = []
    md.append(f"### GPU decode attention, budget {a.budget} ({a.gqa} selection) — {gpu}")
    md.append("")
    if per_backend:
        sdpa_what = (f"SDPA: the {SDPA_LABEL} at each point, named in brackets, of those "
                     f"sdpa_baseline.py timed ({', '.join(label for _, label in per_backend)}; "
                     f"`default:X` = the default selection, which picked X); eager and graph "
                     f"minima taken separately.")
    else:
        sdpa_what = ("SDPA: the one backend this (older) sdpa_baseline.py CSV timed, named in "
                     "brackets.")
    md.append(f"One layer, d = 128, {dtype} KV; ms per decode step, medians of CUDA-event times. "
              f"Copy bandwidth (device-to-device, read + write): "
              f"{copy:.0f} GB/s in our run" + (f", {sdpa_copy:.0f} GB/s in the SDPA run"
                                               if sdpa_copy else "") + ". " + sdpa_what
              + (" *graph*: the step replayed as a CUDA graph (no host launch gaps); other "
                 "columns: launches issued one by one (eager)." if has_graph else ""))
    md.append("")
    head = ("| heads q/kv | batch | context | SDPA ms (fastest) | our dense ms | dense / SDPA | "
            "Adamas ms | estimate / top-k / attention ms | speedup vs SDPA | vs our dense | ")
    align = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | "
    if has_graph:
        head += ("graph: SDPA ms (fastest) | graph: dense / Adamas ms | graph: dense / SDPA | "
                 "graph: speedup vs SDPA | ")
        align += "---: | ---: | ---: | ---: | "
    md.append(head + "estimate GB/s (% copy) | dense GB/s (% copy) |")
    md.append(align + "---: | ---: |")
    for k in keys:
        r, res = ours[k], results[k]
        ratio_txt = "n/a" if res["ratio"] is None else f"{res['ratio']:.2f}"
        line = (f"| {k[0]}/{k[1]} | {k[2]} | {ctx_name(k[3])} | "
                f"{with_name(res['sdpa'], res['backend'])} | "
                f"{fmt_ms(res['dense'])} | {ratio_txt} | {fmt_ms(res['sparse'])} | "
                f"{fmt_ms(num(r['estimate_ms']))} / {fmt_ms(num(r['topk_ms']))} / "
                f"{fmt_ms(num(r['attention_ms']))} | {fmt_x(res['speedup'])} | "
                f"{fmt_x(num(r['speedup_vs_dense']))} | ")
        if has_graph:
            ratio_g = "n/a" if res["ratio_g"] is None else f"{res['ratio_g']:.2f}"
            line += (f"{with_name(res['sdpa_g'], res['backend_g'])} | "
                     f"{fmt_ms(res['dense_g'])} / {fmt_ms(res['sparse_g'])} | {ratio_g} | "
                     f"{fmt_x(res['speedup_g'])} | ")
        line += (f"{num(r['estimate_gbps']) or 0:.0f} ({res['est_pct'] or 0:.0f}%) | "
                 f"{num(r['dense_gbps']) or 0:.0f} ({num(r['dense_pct_copy']) or 0:.0f}%) |")
        md.append(line)

    if per_backend:
        md.append("")
        md.append("Every SDPA backend, eager / graph ms (**bold**: the fastest eager or graph; "
                  "—: refused or failed, see the SDPA CSV's `error`):")
        md.append("")
        md.append("| heads q/kv | batch | context | "
                  + " | ".join(label for _, label in per_backend) + " |")
        md.append("| --- | ---: | ---: | " + " | ".join("---:" for _ in per_backend) + " |")
        for k in keys:
            r = sdpa.get(k)
            if r is None:
                continue
            s = sdpa_of(r)
            cells = []
            for c, _ in per_backend:
                e, g = num(r.get(f"{c}_ms")), num(r.get(f"{c}_graph_ms"))
                name = (f"default:{r['default_choice']}" if c == "default"
                        and r.get("default_choice") else c)
                e_txt = fmt_ms(e) if e else "—"
                g_txt = fmt_ms(g) if g else "—"
                if e and name == s["backend"]:
                    e_txt = f"**{e_txt}**"
                if g and name == s["graph_backend"]:
                    g_txt = f"**{g_txt}**"
                cell = f"{e_txt} / {g_txt}"
                if c == "default" and r.get("default_choice"):
                    cell += f" ({r['default_choice']})"
                cells.append(cell)
            md.append(f"| {k[0]}/{k[1]} | {k[2]} | {ctx_name(k[3])} | " + " | ".join(cells)
                      + " |")

    md.append("")
    md.append(f"Targets (issue; against the {SDPA_LABEL}; CUDA-graph timings on both sides "
              f"decide, eager shown too; speedups at budget {TARGET_BUDGET}):")

    def verdict(ok):
        return "**met**" if ok else "**not met**"

    def judged(graph, eager):
        """graph, eager: (text, ok) or None. 'graph X — met; eager Y': the graph figure decides,
        eager where there is no graph timing."""
        if graph:
            return (f"graph {graph[0]} — {verdict(graph[1])}"
                    + (f"; eager {eager[0]}" if eager else ""))
        if eager:
            return f"eager {eager[0]} — {verdict(eager[1])} (no graph timing)"
        return "not measured"

    def heads_of(kind):
        return [h for h in heads_cfgs if kind_of(*h) == kind]

    budget_note = (f" (this table: budget {a.budget}; target stated for {TARGET_BUDGET})"
                   if a.budget != TARGET_BUDGET else "")
    gqa_note = (f" (this table: {a.gqa} selection; target stated for per-head)"
                if a.gqa != "per-head" else "")
    for kind, batch, ctx, target in SPEEDUP_TARGETS:
        cfgs = heads_of(kind) or [None]
        for h in cfgs:
            name = f"{kind} {h[0]}/{h[1]}" if h else kind
            what = (f"{name} batch {batch}, {ctx_name(ctx)}: Adamas ≥ {target:g}× faster than "
                    f"the {SDPA_LABEL}" + budget_note + (gqa_note if kind == "GQA" else ""))
            res = results.get((h[0], h[1], batch, ctx)) if h else None
            if not res:
                md.append(f"- {what}: not measured")
                continue
            g = ((f"{res['speedup_g']:.1f}× (SDPA {fmt_ms(res['sdpa_g'])} ms, "
                  f"{res['backend_g'] or '?'}; Adamas {fmt_ms(res['sparse_g'])} ms)",
                  res["speedup_g"] >= target) if res["speedup_g"] else None)
            e = ((f"{res['speedup']:.1f}× (SDPA {fmt_ms(res['sdpa'])} ms, "
                  f"{res['backend'] or '?'}; Adamas {fmt_ms(res['sparse'])} ms)",
                  res["speedup"] >= target) if res["speedup"] else None)
            md.append(f"- {what}: " + judged(g, e))

    for kind in ("MHA", "GQA"):
        for h in heads_of(kind):
            for batch in DENSE_BATCHES:
                ks = [k for k in keys if k[:3] == (h[0], h[1], batch)]
                if not ks:
                    continue
                what = (f"our dense within {DENSE_RATIO_TARGET:g}× of the {SDPA_LABEL}, "
                        f"{kind} {h[0]}/{h[1]} batch {batch}, every context")
                parts = {}
                for suffix in ("_g", ""):
                    ratios = [(k, results[k]["ratio" + suffix]) for k in ks]
                    have = [(k, v) for k, v in ratios if v is not None]
                    if not have:
                        continue
                    txt = ", ".join(f"{ctx_name(k[3])} " + ("n/a" if v is None else f"{v:.2f}×")
                                    for k, v in ratios)
                    worst = max(v for _, v in have)
                    missing = len(ratios) - len(have)
                    parts[suffix] = (txt + (f" ({missing} context(s) unmeasured)" if missing
                                            else ""),
                                     worst <= DENSE_RATIO_TARGET)
                md.append(f"- {what}: " + judged(parts.get("_g"), parts.get("")))

    for kind, batch, from_ctx in ESTIMATE_TARGETS:
        for h in heads_of(kind) or [None]:
            name = f"{kind} {h[0]}/{h[1]}" if h else kind
            what = (f"estimate kernel ≥ {ESTIMATE_PCT_TARGET:g}% of the measured copy bandwidth, "
                    f"{name} batch {batch}, from {ctx_name(from_ctx)} on")
            ks = [k for k in keys if h and k[:3] == (h[0], h[1], batch)]
            judged_ks = [k for k in ks if k[3] >= from_ctx and results[k]["est_pct"] is not None]
            if not judged_ks:
                md.append(f"- {what}: not measured")
                continue
            pts = ", ".join(f"{ctx_name(k[3])} {results[k]['est_pct']:.0f}%" for k in judged_ks)
            worst_k = min(judged_ks, key=lambda k: results[k]["est_pct"])
            worst = results[worst_k]["est_pct"]
            shorter = [f"{ctx_name(k[3])} {results[k]['est_pct']:.0f}%" for k in ks
                       if k[3] < from_ctx and results[k]["est_pct"] is not None]
            md.append(f"- {what}: {pts} — {verdict(worst >= ESTIMATE_PCT_TARGET)}"
                      + (f" (lowest {worst:.0f}% at {ctx_name(worst_k[3])})"
                         if len(judged_ks) > 1 else "")
                      + (f"; shorter, not judged: {', '.join(shorter)}" if shorter else ""))

    # GQA never slower than our dense: every GQA row of our CSV (both selection modes, every
    # budget), graph timings (eager where a row has none).
    gqa_rows = [r for r in raw if r["heads_q"] != r["heads_kv"]]
    if gqa_rows:
        slower, compared, eager_only = [], 0, 0
        for r in sorted(gqa_rows, key=lambda r: (key_of(r), r.get("gqa", ""), int(r["budget"]))):
            sp, dn = num(r.get("sparse_graph_ms")), num(r.get("dense_graph_ms"))
            timing = "graph"
            if not (sp and dn):
                sp, dn, timing = num(r["sparse_ms"]), num(r["dense_ms"]), "eager"
                eager_only += 1
            if not (sp and dn):
                continue
            compared += 1
            if sp > dn:
                slower.append(f"{r['heads_q']}/{r['heads_kv']} {r.get('gqa', '')} batch "
                              f"{r['batch']} {ctx_name(int(r['context']))} budget {r['budget']}: "
                              f"{fmt_ms(sp)} vs {fmt_ms(dn)} ms"
                              + (" (eager)" if timing == "eager" else ""))
        modes = sorted({r.get("gqa", "") for r in gqa_rows} - {""})
        what = (f"GQA: Adamas never slower than our dense (every GQA row: "
                f"{' and '.join(modes) or 'one'} selection, every budget; graph timings"
                + (f", eager for {eager_only} row(s) without" if eager_only else "") + ")")
        if not compared:
            md.append(f"- {what}: not measured")
        elif not slower:
            md.append(f"- {what}: slower in none of {compared} rows — {verdict(True)}")
        else:
            shown = slower[:12]
            md.append(f"- {what}: slower in {len(slower)} of {compared} rows — {verdict(False)}: "
                      + "; ".join(shown)
                      + (f"; … and {len(slower) - len(shown)} more" if len(slower) > 12 else ""))
    md.append("")
    if written:
        md.append("Figure: " + ", ".join(f"`{os.path.basename(p)}`" for p in written) + ".")
    text = "\n".join(md) + "\n"
    md_path = a.md or os.path.splitext(a.png)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(text)
    print(text)
    print("wrote " + ", ".join(written + [md_path]))


if __name__ == "__main__":
    main()
