#!/usr/bin/env python3
"""The CPU decode report: markdown tables (and a PNG when matplotlib is there) from the CSVs of
`adamas bench-matvec`, `adamas bench-e2e --device cpu` (one or more runs of the same grid) and
`adamas bench`. Prints the markdown; the README's CPU table is this output.

  python3 bench/cpu_report.py --matvec M.csv --e2e E1.csv [E2.csv ...] --bench B.csv [B2.csv]
      [--png out.png] [--title TEXT]
"""
import argparse
import csv
import statistics
import sys


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def matvec_table(path):
    """Per implementation and dtype: the decode step's products (bytes / time, each matrix
    weighted by its count per step) in GB/s and % of the run's best read-only bandwidth."""
    rs = rows(path)
    read = float(rs[0]["read_gbps"])
    ns = sorted({int(r["n"]) for r in rs})
    series = {}
    for r in rs:
        key = (r["impl"], r["dtype"])
        acc = series.setdefault(key, {}).setdefault(int(r["n"]), [0.0, 0.0])
        per = int(r["per_step"])
        acc[0] += float(r["gbps"]) * float(r["ms"]) * 1e6 * per  # bytes
        acc[1] += float(r["ms"]) * per
    out = ["| products | " + " | ".join(f"n = {n}" for n in ns) + " |",
           "| --- | " + " | ".join("---:" for _ in ns) + " |"]
    curves = {}
    for (impl, dt), by_n in series.items():
        cells, curve = [], []
        for n in ns:
            b, ms = by_n[n]
            gbps = b / (ms * 1e6)
            cells.append(f"{gbps:.1f} GB/s ({100 * gbps / read:.0f}%)")
            curve.append(100 * gbps / read)
        name = f"{'ours' if impl == 'adamas' else impl} {dt}"
        out.append(f"| {name} | " + " | ".join(cells) + " |")
        curves[name] = curve
    lo = float(rs[0].get("read_gbps_min") or read)
    note = (f"Read-only bandwidth through the run {lo:.1f}–{read:.1f} GB/s; percentages of "
            f"{read:.1f}. {rs[0]['threads']} threads.")
    return "\n".join(out), note, ns, curves


def e2e_table(paths):
    """bench-e2e rows of one grid over several runs: the median of each figure and the range of
    x floor."""
    runs = [rows(p) for p in paths]
    keys = [(r["batch"], r["context"], r["policy"]) for r in runs[0]]
    out = ["| model | batch | context | policy | decode ms/step | floor ms | × floor (range) | "
           "speedup | prefill tok/s | prefill × sgemm |",
           "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    bars = []
    for k in keys:
        same = [r for run in runs for r in run if (r["batch"], r["context"], r["policy"]) == k]
        med = lambda f: statistics.median(float(r[f]) for r in same)  # noqa: E731
        xf = [float(r["x_floor"]) for r in same]
        model = same[0]["model"].rstrip("/").split("/")[-1]
        xs = med("prefill_x_sgemm") if same[0].get("prefill_x_sgemm") else None
        xs_text = f"{xs:.2f}" if xs is not None else "-"
        out.append(f"| {model} | {k[0]} | {k[1]} | {k[2]} | {med('decode_ms'):.2f} | "
                   f"{med('floor_ms'):.2f} | {med('x_floor'):.2f}× ({min(xf):.2f}–{max(xf):.2f}) | "
                   f"{med('speedup_vs_full'):.2f}× | {med('prefill_tok_s'):.0f} | {xs_text} |")
        bars.append((f"b{k[0]} {k[2]}", med("decode_ms"), med("floor_ms")))
    r0 = runs[0][0]
    note = (f"{len(runs)} run(s); floor = (weights + KV bytes read per step) / read-only bandwidth "
            f"({', '.join(r[0]['read_gbps'] for r in runs)} GB/s in the runs); sgemm "
            f"{', '.join(r[0]['sgemm_gflops'] for r in runs)} GFLOP/s; {r0['model_shape']}.")
    return "\n".join(out), note, bars


def bench_table(paths):
    out = ["| heads q/kv | context | budget | dense ms | Adamas ms | speedup | dense GB/s | "
           "estimate GB/s | read-only GB/s |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in paths:
        for r in rows(p):
            out.append(f"| {r['heads']}/{r['kv_heads']} | {r['context']} | {r['budget']} | "
                       f"{float(r['dense_ms']):.2f} | {float(r['total_ms']):.2f} | "
                       f"{float(r['speedup']):.1f}× | {float(r['dense_gbs']):.1f} | "
                       f"{float(r['estimate_gbs']):.1f} | {float(r['read_gbs']):.1f} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--matvec")
    ap.add_argument("--e2e", nargs="*", default=[])
    ap.add_argument("--bench", nargs="*", default=[])
    ap.add_argument("--png")
    ap.add_argument("--title", default="CPU decode")
    a = ap.parse_args()
    mv = e2e = None
    if a.matvec:
        table, note, ns, curves = matvec_table(a.matvec)
        print("### Decode products (`adamas bench-matvec`, Llama-3.2-1B shapes)\n")
        print(table + "\n\n" + note + "\n")
        mv = (ns, curves)
    if a.e2e:
        table, note, bars = e2e_table(a.e2e)
        print("### End to end (`adamas bench-e2e --device cpu`)\n")
        print(table + "\n\n" + note + "\n")
        e2e = bars
    if a.bench:
        print("### One layer's decode attention (`adamas bench`, budget 256)\n")
        print(bench_table(a.bench) + "\n")
    if a.png:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("cpu_report: matplotlib not found, no PNG", file=sys.stderr)
            return
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        if mv:
            ns, curves = mv
            for name, c in curves.items():
                axes[0].plot(ns, c, marker="o", label=name)
            axes[0].axhline(70, color="gray", ls="--", lw=0.8, label="70% (target)")
            axes[0].set_xscale("log", base=2)
            axes[0].set_xticks(ns, [str(n) for n in ns])
            axes[0].set_xlabel("rows n (decode batch)")
            axes[0].set_ylabel("% of read-only bandwidth")
            axes[0].set_title("decode step's products")
            axes[0].legend(fontsize=8)
        if e2e:
            labels = [b[0] for b in e2e]
            x = range(len(e2e))
            axes[1].bar([i - 0.2 for i in x], [b[1] for b in e2e], 0.4, label="decode ms/step")
            axes[1].bar([i + 0.2 for i in x], [b[2] for b in e2e], 0.4, label="byte floor")
            axes[1].set_xticks(list(x), labels, rotation=20, fontsize=8)
            axes[1].set_ylabel("ms per decode step")
            axes[1].set_title("shipped model at 8K, end to end")
            axes[1].legend(fontsize=8)
        fig.suptitle(a.title)
        fig.tight_layout()
        fig.savefig(a.png, dpi=110)
        print(f"wrote {a.png}", file=sys.stderr)


if __name__ == "__main__":
    main()
