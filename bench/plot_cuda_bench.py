#!/usr/bin/env python3
"""Joins the GPU benchmark's CSV (adamas_cuda_bench) with the PyTorch SDPA baseline's
(bench/sdpa_baseline.py) on (heads_q, heads_kv, batch, context) and writes:

  OUT.png          the paper-style figure: per heads config and batch, per context length, full
                   attention (SDPA flash and our dense, side by side) against Adamas' stacked
                   stages (encode + estimate, top-k, sparse attention) at one budget, log scale,
                   with the speedup over SDPA on top;
  OUT-budgets.png  speedup over SDPA against the budget, one line per context (--no-budgets: off);
  OUT.md           (or --md PATH) a Markdown table at that budget and one line per issue target,
                   met or not met, with the figure; also printed to stdout.

Usage: python3 bench/plot_cuda_bench.py ours.csv sdpa.csv OUT.png [--budget 256] [--md OUT.md]
       (or --png OUT.png; --scale relative|log|ms; --gqa per-head|shared)
Needs matplotlib (Debian: python3-matplotlib; /usr/bin/python3 here, python3 on the GPU machine).
"""
import argparse
import csv
import math
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

# The targets (batch 1, budget 256 unless stated).
SPEEDUP_TARGETS = {32768: 6.0, 131072: 10.0}  # x faster than SDPA dense
ESTIMATE_PCT_TARGET = 70.0  # estimate kernel, % of the measured copy bandwidth
ESTIMATE_MIN_CONTEXT = 32768  # rows this long or longer are judged (shorter: launch-bound)
DENSE_RATIO_TARGET = 1.2  # our dense ms / SDPA ms at most

STAGES = [("encode_ms", "encode query", "#c6dbef"),
          ("estimate_ms", "estimate (code distances)", "#4292c6"),
          ("topk_ms", "top-k", "#fd8d3c"),
          ("attention_ms", "sparse attention", "#31a354")]


def num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def ctx_name(c):
    return f"{c // 1024}K" if c % 1024 == 0 else str(c)


def fmt_ms(v):
    if v is None:
        return "n/a"
    return f"{v:.3f}" if v < 10 else f"{v:.2f}"


def fmt_x(v):
    return "n/a" if v is None else f"{v:.1f}×"


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def key_of(r):
    return (int(r["heads_q"]), int(r["heads_kv"]), int(r["batch"]), int(r["context"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ours", help="adamas_cuda_bench CSV")
    ap.add_argument("sdpa", help="sdpa_baseline.py CSV (may be missing rows)")
    ap.add_argument("png", nargs="?", help="output PNG (or --png)")
    ap.add_argument("--png", dest="png_opt", default=None, help="output PNG")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--gqa", default="per-head", help="which GQA selection rows to use")
    ap.add_argument("--md", default=None, help="Markdown output (default: PNG name with .md)")
    ap.add_argument("--no-budgets", action="store_true", help="skip the speedup-vs-budget PNG")
    ap.add_argument("--scale", choices=["relative", "log", "ms"], default="relative",
                    help="y axis: time / SDPA time (default), log ms, or linear ms")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    a.png = a.png_opt or a.png
    if not a.png:
        ap.error("give the output PNG (positional or --png)")

    # MHA rows have one selection mode only (the bench writes them as per-head).
    ours_all = [r for r in load(a.ours) if r.get("gqa", "") in (a.gqa, "")
                or (r["heads_q"] == r["heads_kv"] and r.get("gqa") == "per-head")]
    if not ours_all:
        raise SystemExit(f"no rows with gqa={a.gqa} in {a.ours}")
    sdpa = {}
    for r in load(a.sdpa) if os.path.exists(a.sdpa) else []:
        sdpa[key_of(r)] = r
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

    def sdpa_ms(k):
        r = sdpa.get(k)
        return num(r["sdpa_ms"]) if r else None

    # ---- figure: stacked stages against full attention ------------------------------------
    # relative (default): every context's bars divided by its SDPA time (our dense where SDPA is
    # missing), linear axis, so the stacked stages keep their proportions and the Adamas bar's
    # height is 1 / speedup; absolute times are written under the bars. log / ms: milliseconds.
    nrows, ncols = len(heads_cfgs), len(batches)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.9 * nrows), squeeze=False)
    w = 0.27
    for i, (hq, hkv) in enumerate(heads_cfgs):
        for j, b in enumerate(batches):
            ax = axes[i][j]
            ks = [k for k in keys if k[:3] == (hq, hkv, b)]
            if not ks:
                ax.set_visible(False)
                continue
            x = list(range(len(ks)))
            sd = [sdpa_ms(k) for k in ks]
            dn = [num(ours[k]["dense_ms"]) for k in ks]
            if a.scale == "relative":
                norm = [r or d or 1.0 for r, d in zip(sd, dn)]
            else:
                norm = [1.0] * len(ks)
            ax.bar([p - w for p in x], [(v or 0) / n for v, n in zip(sd, norm)], w,
                   color="#bdbdbd", label="full: PyTorch SDPA (flash)")
            ax.bar(x, [(v or 0) / n for v, n in zip(dn, norm)], w, color="#636363",
                   label="full: our dense flash-decoding")
            bottom = [0.0] * len(ks)
            for col, label, color in STAGES:
                vals = [(num(ours[k][col]) or 0.0) / n for k, n in zip(ks, norm)]
                ax.bar([p + w for p in x], vals, w, bottom=bottom, color=color,
                       label=f"Adamas: {label}")
                bottom = [s + v for s, v in zip(bottom, vals)]
            if a.scale == "relative":
                labels = [f"{ctx_name(k[3])}\n{fmt_ms(r)} ms" if r else
                          f"{ctx_name(k[3])}\n({fmt_ms(d)} ms)*" for k, r, d in zip(ks, sd, dn)]
                top = max([1.0] + bottom + [(v or 0) / n for v, n in zip(dn, norm)])
                ax.set_ylim(0, 1.2 * top)
            else:
                labels = [ctx_name(k[3]) for k in ks]
            for p, k, top, n in zip(x, ks, bottom, norm):
                total = num(ours[k]["sparse_ms"])
                ref, dense = sdpa_ms(k), num(ours[k]["dense_ms"])
                if not total:
                    continue
                txt = f"{ref / total:.1f}×" if ref else f"{dense / total:.1f}×*" if dense else ""
                ref_g = num(sdpa[k].get("sdpa_graph_ms")) if k in sdpa else None
                sp_g = num(ours[k].get("sparse_graph_ms"))
                if ref_g and sp_g:
                    txt += f"\ng: {ref_g / sp_g:.1f}×"
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
            ax.set_xlabel("context length" + (" (SDPA ms)" if a.scale == "relative" else ""),
                          fontsize=8)
            if j == 0:
                ax.set_ylabel("time / SDPA time" if a.scale == "relative"
                              else "ms per decode step (one layer)", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(axis="y", which="major", alpha=0.3)
    handles, labels = next(ax for row in axes for ax in row if ax.get_visible()) \
        .get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(a.title or f"Decode attention of one layer, d=128, {dtype}, on {gpu}: Adamas "
                 f"(budget {a.budget}) vs full attention\nbars: eager launches; speedup over "
                 f"SDPA on top (g: both timed as CUDA graph replays; ×* = over our dense where "
                 f"SDPA is missing)", fontsize=9)
    fig.tight_layout(rect=(0, 0.09 if nrows == 1 else 0.06, 1, 0.95))
    fig.savefig(a.png, dpi=130)
    plt.close(fig)
    written = [a.png]

    # ---- figure: speedup over SDPA against the budget ---------------------------------------
    if not a.no_budgets:
        by_panel = defaultdict(lambda: defaultdict(list))
        for r in ours_all:
            k = key_of(r)
            ref = sdpa_ms(k)
            sp = num(r["sparse_ms"])
            if ref and sp:
                by_panel[k[:3]][k[3]].append((int(r["budget"]), ref / sp))
        if by_panel:
            fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.4 * nrows),
                                     squeeze=False)
            for i, (hq, hkv) in enumerate(heads_cfgs):
                for j, b in enumerate(batches):
                    ax = axes[i][j]
                    lines = by_panel.get((hq, hkv, b))
                    if not lines:
                        ax.set_visible(False)
                        continue
                    for c in sorted(lines):
                        pts = sorted(lines[c])
                        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3,
                                label=ctx_name(c))
                    ax.axhline(1.0, color="#888", lw=0.8)
                    ax.set_xscale("log", base=2)
                    ax.set_yscale("log")
                    budgets = sorted({p[0] for pts in lines.values() for p in pts})
                    ax.set_xticks(budgets, [str(v) for v in budgets])
                    ax.minorticks_off()
                    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(10, subs=(1, 2, 5)))
                    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
                        lambda v, _: f"{v:g}×"))
                    ax.set_title(f"{hq} q / {hkv} KV heads, batch {b}", fontsize=9)
                    ax.set_xlabel("budget (tokens)", fontsize=8)
                    if j == 0:
                        ax.set_ylabel("speedup over SDPA", fontsize=8)
                    ax.tick_params(labelsize=8)
                    ax.grid(alpha=0.3, which="both")
                    ax.legend(fontsize=7, title="context", title_fontsize=7)
            fig.suptitle(f"Adamas speedup over PyTorch SDPA (flash) per budget — {gpu}",
                         fontsize=9)
            fig.tight_layout()
            stem, ext = os.path.splitext(a.png)
            out2 = f"{stem}-budgets{ext or '.png'}"
            fig.savefig(out2, dpi=130)
            plt.close(fig)
            written.append(out2)

    # ---- Markdown summary --------------------------------------------------------------------
    # Two timings where both CSVs have them: eager (each launch issued by the host, what the
    # stage breakdown uses) and graph (the whole step replayed as a CUDA graph: device time
    # without the host's launch gaps, as a serving engine's captured decode step runs).
    copy = num(first.get("copy_gbps"))
    sdpa_copy = next((num(r.get("copy_gbps")) for r in sdpa.values() if r.get("copy_gbps")), None)
    results = {}
    for k in keys:
        r = ours[k]
        ref, dn, sp = sdpa_ms(k), num(r["dense_ms"]), num(r["sparse_ms"])
        ref_g = num(sdpa[k].get("sdpa_graph_ms")) if k in sdpa else None
        dn_g, sp_g = num(r.get("dense_graph_ms")), num(r.get("sparse_graph_ms"))
        ref_g, dn_g, sp_g = (v if v else None for v in (ref_g, dn_g, sp_g))
        results[k] = {
            "sdpa": ref, "dense": dn, "sparse": sp, "sdpa_g": ref_g, "dense_g": dn_g,
            "sparse_g": sp_g,
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
    md.append(f"One layer, d = 128, {dtype} KV; ms per decode step, medians of CUDA-event times. "
              f"Copy bandwidth (device-to-device, read + write): "
              f"{copy:.0f} GB/s in our run" + (f", {sdpa_copy:.0f} GB/s in the SDPA run"
                                               if sdpa_copy else "") + "."
              + (" *graph*: the step replayed as a CUDA graph (no host launch gaps); other "
                 "columns: launches issued one by one (eager)." if has_graph else ""))
    md.append("")
    head = ("| heads q/kv | batch | context | SDPA ms | our dense ms | dense / SDPA | Adamas ms | "
            "estimate / top-k / attention ms | speedup vs SDPA | vs our dense | ")
    align = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | "
    if has_graph:
        head += "graph: SDPA / dense / Adamas ms | graph: dense / SDPA | graph: speedup vs SDPA | "
        align += "---: | ---: | ---: | "
    md.append(head + "estimate GB/s (% copy) | dense GB/s (% copy) |")
    md.append(align + "---: | ---: |")
    for k in keys:
        r, res = ours[k], results[k]
        backend = sdpa[k]["backend"] if k in sdpa else ""
        ref_txt = fmt_ms(res["sdpa"]) + (f" ({backend})" if backend and backend != "flash"
                                         else "")
        ratio_txt = "n/a" if res["ratio"] is None else f"{res['ratio']:.2f}"
        line = (f"| {k[0]}/{k[1]} | {k[2]} | {ctx_name(k[3])} | {ref_txt} | "
                f"{fmt_ms(res['dense'])} | {ratio_txt} | {fmt_ms(res['sparse'])} | "
                f"{fmt_ms(num(r['estimate_ms']))} / {fmt_ms(num(r['topk_ms']))} / "
                f"{fmt_ms(num(r['attention_ms']))} | {fmt_x(res['speedup'])} | "
                f"{fmt_x(num(r['speedup_vs_dense']))} | ")
        if has_graph:
            ratio_g = "n/a" if res["ratio_g"] is None else f"{res['ratio_g']:.2f}"
            line += (f"{fmt_ms(res['sdpa_g'])} / {fmt_ms(res['dense_g'])} / "
                     f"{fmt_ms(res['sparse_g'])} | {ratio_g} | {fmt_x(res['speedup_g'])} | ")
        line += (f"{num(r['estimate_gbps']) or 0:.0f} ({res['est_pct'] or 0:.0f}%) | "
                 f"{num(r['dense_gbps']) or 0:.0f} ({num(r['dense_pct_copy']) or 0:.0f}%) |")
        md.append(line)
    md.append("")
    md.append(f"Targets (issue; batch 1, budget {a.budget} for the speedups):")

    def verdict(ok):
        return "**met**" if ok else "**not met**"

    modes = [("", "eager")] + ([("_g", "graph")] if has_graph else [])
    for ctx, target in SPEEDUP_TARGETS.items():
        for hq, hkv in heads_cfgs:
            res = results.get((hq, hkv, 1, ctx))
            what = f"≥ {target:g}× faster than SDPA dense at {ctx_name(ctx)}, {hq}/{hkv} heads"
            if a.budget != 256:
                what += f" (budget {a.budget}, target stated for 256)"
            parts = []
            for suffix, name in modes:
                v = res.get("speedup" + suffix) if res else None
                parts.append(f"{name} not measured" if v is None else
                             f"{name} {v:.1f}× — {verdict(v >= target)}")
            md.append(f"- {what}: " + "; ".join(parts))
    judged = [(k, v) for k, v in results.items()
              if k[3] >= ESTIMATE_MIN_CONTEXT and v["est_pct"] is not None]
    if judged:
        worst_k, worst = min(judged, key=lambda kv: kv[1]["est_pct"])
        best_k, best = max(judged, key=lambda kv: kv[1]["est_pct"])
        short = [v["est_pct"] for k, v in results.items()
                 if k[3] < ESTIMATE_MIN_CONTEXT and v["est_pct"] is not None]
        line = (f"- estimate kernel ≥ {ESTIMATE_PCT_TARGET:g}% of the measured copy bandwidth "
                f"(every config with context ≥ {ctx_name(ESTIMATE_MIN_CONTEXT)}): "
                f"{worst['est_pct']:.0f}% to {best['est_pct']:.0f}% (lowest at "
                f"{worst_k[0]}/{worst_k[1]} batch {worst_k[2]} {ctx_name(worst_k[3])}) — "
                f"{verdict(worst['est_pct'] >= ESTIMATE_PCT_TARGET)}")
        for hq, hkv in heads_cfgs:
            pts = [f"{ctx_name(c)} {results[(hq, hkv, 1, c)]['est_pct']:.0f}%"
                   for c in sorted({k[3] for k in keys})
                   if (hq, hkv, 1, c) in results and results[(hq, hkv, 1, c)]["est_pct"]]
            if pts:
                line += f"; batch 1 {hq}/{hkv}: " + ", ".join(pts)
        if short:
            rng = f"{min(short):.0f}" + (f"–{max(short):.0f}" if max(short) > min(short) else "")
            line += f"; shorter contexts (not judged, launch-bound): {rng}%"
        md.append(line)
    else:
        md.append("- estimate kernel ≥ 70% of copy bandwidth: not measured")
    parts = []
    for suffix, name in modes:
        ratios = [(k, v["ratio" + suffix]) for k, v in results.items()
                  if v["ratio" + suffix] is not None]
        if not ratios:
            parts.append(f"{name} not measured")
            continue
        worst_k, worst = max(ratios, key=lambda kv: kv[1])
        missing = len(results) - len(ratios)
        parts.append(f"{name}: worst {worst:.2f}× at {worst_k[0]}/{worst_k[1]} batch {worst_k[2]} "
                     f"{ctx_name(worst_k[3])}, best {min(r for _, r in ratios):.2f}× — "
                     f"{verdict(worst <= DENSE_RATIO_TARGET)}"
                     + (f" ({missing} config(s) without SDPA)" if missing else ""))
    md.append(f"- our dense within {DENSE_RATIO_TARGET:g}× of SDPA (every config): "
              + "; ".join(parts))
    md.append("")
    md.append("Figure: " + ", ".join(f"`{os.path.basename(p)}`" for p in written) + ".")
    text = "\n".join(md) + "\n"
    md_path = a.md or os.path.splitext(a.png)[0] + ".md"
    with open(md_path, "w") as f:
        f.write(text)
    print(text)
    print("wrote " + ", ".join(written + [md_path]))


if __name__ == "__main__":
    main()
