#!/usr/bin/python3
"""Draws the PNGs of `adamas eval` from its CSV files (whatever of them is in the directory).

  /usr/bin/python3 tools/eval/plot_eval.py docs/results

passkey_summary.csv -> passkey_heatmap_<policy>.png (length x depth, one panel per budget),
                       passkey_vs_budget.png (accuracy against budget, per policy and length)
ppl.csv             -> ppl_vs_budget.png
ppl_curve.csv       -> ppl_curve.png (perplexity against position, per policy, a few budgets)
recall_summary.csv  -> recall_vs_budget.png (recall, attention mass, output error; policies and
                       ablations)
recall.csv          -> recall_layers.png (recall per layer and head at one budget)
Debian's python3-matplotlib; no other dependency.
"""
import csv, math, os, re, sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def slug(s):
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_")


def bname(b):
    return "all" if int(b) == 0 else str(b)


def passkey(d):
    rows = read(os.path.join(d, "passkey_summary.csv"))
    acc = defaultdict(dict)  # (policy) -> {(budget, length, depth): accuracy}
    for r in rows:
        acc[r["policy"]][(int(r["budget"]), int(r["length"]), float(r["depth"]))] = float(r["accuracy"])
    out = []
    for pol, cells in acc.items():
        budgets = sorted({k[0] for k in cells})
        lengths = sorted({k[1] for k in cells})
        depths = sorted({k[2] for k in cells})
        n = len(budgets)
        cols = min(n, 5)
        rws = math.ceil(n / cols)
        fig, axes = plt.subplots(rws, cols, figsize=(2.4 * cols + 1.5, 2.4 * rws + 0.8), squeeze=False)
        fig.subplots_adjust(left=0.08, right=0.86, top=0.88, bottom=0.1, wspace=0.08, hspace=0.35)
        for i, b in enumerate(budgets):
            ax = axes[i // cols][i % cols]
            m = [[cells.get((b, L, dp), float("nan")) for dp in depths] for L in lengths]
            im = ax.imshow(m, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto", origin="lower")
            ax.set_title("budget " + bname(b), fontsize=9)
            ax.set_xticks(range(len(depths)), ["%d" % (100 * x) for x in depths], fontsize=7)
            ax.set_yticks(range(len(lengths)), [str(L) for L in lengths] if i % cols == 0 else [], fontsize=7)
            for yi, row in enumerate(m):
                for xi, v in enumerate(row):
                    if v == v:
                        ax.text(xi, yi, "%.2f" % v, ha="center", va="center", fontsize=6)
            if i % cols == 0:
                ax.set_ylabel("context")
            if i // cols == rws - 1:
                ax.set_xlabel("depth %")
        for j in range(n, rws * cols):
            axes[j // cols][j % cols].axis("off")
        fig.suptitle("passkey retrieval: " + pol)
        fig.colorbar(im, cax=fig.add_axes([0.89, 0.2, 0.015, 0.6]))
        p = os.path.join(d, "passkey_heatmap_%s.png" % slug(pol))
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out.append(p)
    # accuracy against budget, one panel per length
    lengths = sorted({k[1] for c in acc.values() for k in c})
    fig, axes = plt.subplots(1, len(lengths) + 1, figsize=(3.6 * (len(lengths) + 1), 3.4), squeeze=False)
    for i, L in enumerate(lengths + [None]):
        ax = axes[0][i]
        for pol, cells in acc.items():
            by_b = defaultdict(list)
            for (b, l, dp), v in cells.items():
                if L is None or l == L:
                    by_b[b].append(v)
            if list(by_b) == [0]:
                ax.axhline(sum(by_b[0]) / len(by_b[0]), color="k", ls="--", lw=1, label=pol)
                continue
            bs = sorted(b for b in by_b if b > 0)
            ax.plot(bs, [sum(by_b[b]) / len(by_b[b]) for b in bs], marker="o", ms=3, label=pol)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.03, 1.03)
        ax.set_title("context %s" % (L if L else "all"))
        ax.set_xlabel("budget (tokens)")
        if i == 0:
            ax.set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    p = os.path.join(d, "passkey_vs_budget.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    out.append(p)
    return out


def ppl(d):
    out = []
    rows = read(os.path.join(d, "ppl.csv"))
    full = [float(r["ppl"]) for r in rows if int(r["budget"]) == 0]
    fig, ax = plt.subplots(figsize=(6, 4))
    by = defaultdict(list)
    for r in rows:
        if int(r["budget"]) > 0:
            by[r["policy"]].append((int(r["budget"]), float(r["ppl"])))
    for pol, pts in by.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=pol)
    if full:
        ax.axhline(full[0], color="k", ls="--", lw=1, label="full")
        ax.axhline(full[0] * 1.02, color="gray", ls=":", lw=1, label="full + 2%")
        ax.set_ylim(full[0] * 0.97, full[0] * 1.6)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("budget (tokens)")
    ax.set_ylabel("perplexity (decode mode)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = os.path.join(d, "ppl_vs_budget.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    out.append(p)
    cpath = os.path.join(d, "ppl_curve.csv")
    if os.path.exists(cpath):
        rows = read(cpath)
        pols = [p for p in dict.fromkeys(r["policy"] for r in rows) if p != "full"]
        show = [b for b in (32, 64, 128, 256) if any(int(r["budget"]) == b for r in rows)]
        fig, axes = plt.subplots(2, len(show), figsize=(4 * len(show), 6.6), squeeze=False, sharey="row")
        fullc = [(int(r["begin"]), int(r["end"]), float(r["ppl"])) for r in rows if int(r["budget"]) == 0]
        fullp = {x[0]: x[2] for x in fullc}
        for i, b in enumerate(show):
            ax, rel = axes[0][i], axes[1][i]
            if fullc:
                ax.plot([(x[0] + x[1]) / 2 for x in fullc], [x[2] for x in fullc], "k--", lw=1.2, label="full")
                rel.axhline(0, color="k", ls="--", lw=1)
                rel.axhline(2, color="gray", ls=":", lw=1)
            for pol in pols:
                pts = [((int(r["begin"]) + int(r["end"])) / 2, float(r["ppl"]), int(r["begin"])) for r in rows
                       if r["policy"] == pol and int(r["budget"]) == b]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=pol)
                    if fullp:
                        rel.plot([p[0] for p in pts], [100 * (p[1] / fullp[p[2]] - 1) for p in pts], marker=".", label=pol)
            ax.set_title("budget %d" % b)
            rel.set_xlabel("position")
            rel.set_ylim(-2, 40)
            if i == 0:
                ax.set_ylabel("perplexity per bucket")
                rel.set_ylabel("% above full attention")
            ax.set_yscale("log")
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        p = os.path.join(d, "ppl_curve.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out.append(p)
    return out


def recall(d):
    out = []
    rows = read(os.path.join(d, "recall_summary.csv"))
    rows = [r for r in rows if r["kind"] == "all"]
    main = [p for p in dict.fromkeys(r["policy"] for r in rows)
            if p in ("oracle", "oracle:gqa=shared", "adamas", "adamas:thresholds=calibrated", "quest", "streaming")]
    abl = [p for p in dict.fromkeys(r["policy"] for r in rows) if p.startswith("adamas")]
    metrics = [("recall", "recall of exact top-k"), ("attention_mass", "attention mass captured"),
               ("output_rel_error", "rel. error of attention output")]
    for name, pols in (("recall_vs_budget.png", main), ("recall_ablations.png", abl)):
        if not pols:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        colors = plt.get_cmap("tab20").colors
        for ax, (m, title) in zip(axes, metrics):
            for ci, pol in enumerate(pols):
                pts = sorted((int(r["budget"]), float(r[m])) for r in rows if r["policy"] == pol)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=pol,
                        ls="--" if "calibrated" in pol else "-", color=colors[(2 * ci) % 20 + (ci // 10) % 2])
            ax.set_xscale("log", base=2)
            ax.set_xlabel("budget (tokens)")
            ax.set_title(title + " (layers >= %s)" % rows[0]["layers_from"])
            if m == "output_rel_error":
                ax.set_yscale("log")
        axes[-1].legend(fontsize=7)
        fig.tight_layout()
        p = os.path.join(d, name)
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out.append(p)
    lpath = os.path.join(d, "recall.csv")
    if os.path.exists(lpath):
        rows = read(lpath)
        budget = 64 if any(int(r["budget"]) == 64 for r in rows) else int(rows[0]["budget"])
        pols = [p for p in dict.fromkeys(r["policy"] for r in rows)
                if p in ("oracle:gqa=shared", "adamas", "adamas:thresholds=calibrated", "adamas:gqa=shared", "quest", "streaming")]
        layers = sorted({int(r["layer"]) for r in rows})
        heads = sorted({int(r["head"]) for r in rows})
        fig, axes = plt.subplots(1, len(pols), figsize=(2.6 * len(pols) + 1, 3.4), squeeze=False)
        for i, pol in enumerate(pols):
            acc = defaultdict(list)
            for r in rows:
                if r["policy"] == pol and int(r["budget"]) == budget:
                    acc[(int(r["layer"]), int(r["head"]))].append(float(r["recall"]))
            m = [[sum(acc[(l, h)]) / len(acc[(l, h)]) if acc[(l, h)] else float("nan") for h in heads] for l in layers]
            ax = axes[0][i]
            im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
            for l, row in enumerate(m):
                for h, v in enumerate(row):
                    ax.text(h, l, "%.2f" % v, ha="center", va="center", fontsize=6, color="w" if v < 0.6 else "k")
            ax.set_title(pol, fontsize=8)
            ax.set_xlabel("query head")
            ax.set_xticks(range(len(heads)), heads)
            ax.set_yticks(range(len(layers)), layers)
            if i == 0:
                ax.set_ylabel("layer")
        fig.suptitle("recall of the exact top-%d per layer and head (passkey + text queries)" % budget)
        fig.subplots_adjust(left=0.05, right=0.9, bottom=0.17, top=0.82, wspace=0.25)
        fig.colorbar(im, cax=fig.add_axes([0.92, 0.2, 0.012, 0.6]))
        p = os.path.join(d, "recall_layers.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        out.append(p)
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "docs/results"
    made = []
    for fn, f in ((passkey, "passkey_summary.csv"), (ppl, "ppl.csv"), (recall, "recall_summary.csv")):
        if os.path.exists(os.path.join(d, f)):
            made += fn(d)
    for p in made:
        print("wrote", p)
    if not made:
        print("no CSV files of adamas eval in", d)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
