#!/usr/bin/env python3
"""Plots an `adamas bench-e2e` CSV: decode ms per step against context for each policy (solid)
with its byte floor (dashed), one panel per batch size, and a bar chart of prefill tokens/s.

Usage: python3 bench/plot_e2e.py adamas_bench_e2e.csv out.png
Needs matplotlib (Debian: python3-matplotlib; run with /usr/bin/python3).
"""
import argparse
import csv
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def ctx_label(c):
    return f"{c // 1024}K" if c % 1024 == 0 else str(c)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("png")
    a = ap.parse_args()
    rows = list(csv.DictReader(open(a.csv)))
    if not rows:
        raise SystemExit(f"no rows in {a.csv}")
    batches = sorted({int(r["batch"]) for r in rows})
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    fig, axes = plt.subplots(1, len(batches) + 1, figsize=(4.6 * (len(batches) + 1), 4.2))
    for ax, batch in zip(axes, batches):
        for i, pol in enumerate(policies):
            pts = sorted((int(r["context"]), float(r["decode_ms"]), float(r["floor_ms"]))
                         for r in rows if r["policy"] == pol and int(r["batch"]) == batch)
            if not pts:
                continue
            ctx, ms, floor = zip(*pts)
            color = f"C{i}"
            ax.plot(ctx, ms, "o-", color=color, label=pol)
            ax.plot(ctx, floor, "--", color=color, alpha=0.7, label=f"{pol} floor")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ticks = sorted({int(r["context"]) for r in rows})
        ax.set_xticks(ticks, [ctx_label(c) for c in ticks])
        ax.minorticks_off()
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel("decode ms / step")
        ax.set_title(f"batch {batch}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    # Prefill tokens/s of each (batch, context) point (the same on every policy's row).
    prefill = {}
    for r in rows:
        prefill[(int(r["context"]), int(r["batch"]))] = float(r["prefill_tok_s"])
    by_ctx = defaultdict(list)
    for (ctx, _), v in sorted(prefill.items()):
        by_ctx[ctx].append(v)
    ax = axes[-1]
    ctxs = sorted(by_ctx)
    ax.bar(range(len(ctxs)), [max(by_ctx[c]) for c in ctxs], color="#4292c6")
    ax.set_xticks(range(len(ctxs)), [ctx_label(c) for c in ctxs])
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("prefill tokens/s (one sequence)")
    ax.set_title("prefill")
    r0 = rows[0]
    fig.suptitle(f'{r0["model_shape"]} on {r0["device"]}, KV {r0["kv_dtype"]}, '
                 f'copy {float(r0["copy_gbps"]):.0f} GB/s ({r0["date"][:10]})', fontsize=10)
    fig.tight_layout()
    fig.savefig(a.png, dpi=130)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
