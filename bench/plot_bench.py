#!/usr/bin/env python3
"""Plots an `adamas bench` CSV: per context length, dense attention beside Adamas' stacked stages
(encode, estimate, top-k, attention) at one budget, with the speedup written on top.

Usage: python3 bench/plot_bench.py adamas_bench.csv out.png [--budget 256]
Needs matplotlib (Debian: python3-matplotlib; run with /usr/bin/python3).
"""
import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("png")
    ap.add_argument("--budget", type=int, default=256)
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    rows = [r for r in csv.DictReader(open(a.csv)) if int(r["budget"]) == a.budget]
    if not rows:
        raise SystemExit(f"no rows with budget {a.budget} in {a.csv}")
    rows.sort(key=lambda r: int(r["context"]))
    ctx = [f'{int(r["context"]) // 1024}K' for r in rows]
    x = range(len(rows))
    w = 0.38
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 3, 4.2))
    ax.bar([i - w / 2 for i in x], [float(r["dense_ms"]) for r in rows], w, label="dense attention",
           color="#9e9e9e")
    bottom = [0.0] * len(rows)
    for key, label, color in [("encode_ms", "encode query", "#c6dbef"),
                              ("estimate_ms", "estimate (L1 of codes)", "#4292c6"),
                              ("topk_ms", "top-k", "#fd8d3c"),
                              ("attention_ms", "sparse attention", "#31a354")]:
        vals = [float(r[key]) for r in rows]
        ax.bar([i + w / 2 for i in x], vals, w, bottom=bottom, label=label, color=color)
        bottom = [b + v for b, v in zip(bottom, vals)]
    for i, r in enumerate(rows):
        ax.text(i + w / 2, float(r["total_ms"]) * 1.02 + 0.2, f'{float(r["speedup"]):.1f}x',
                ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(x), ctx)
    ax.set_xlabel("context length")
    ax.set_ylabel("ms per decode step (one layer)")
    r0 = rows[0]
    ax.set_title(a.title or f'{r0["policy"]} budget {a.budget} vs dense — {r0["heads"]} q / '
                 f'{r0["kv_heads"]} KV heads, d={r0["head_dim"]}, {r0["dtype"]}, '
                 f'batch {r0["batch"]}, {r0["simd"]}, {r0["threads"]} threads', fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.png, dpi=120)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
