#!/usr/bin/env python3
"""Plot train_log.csv (from train.py) -> loss.png.

  /usr/bin/python3 tools/model/plot_loss.py RUN/train_log.csv models/adamas-tiny-8k/loss.png
"""
import csv, sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = list(csv.DictReader(open(src)))
    col = lambda k: [float(r[k]) for r in rows]
    tok = [t / 1e6 for t in col("tokens")]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    ax[0].plot(tok, col("lm_loss"), lw=0.8, label="LM loss (weight-1 targets)")
    ax[0].plot(tok, col("loss"), lw=0.6, alpha=0.6, label="training loss (answers x50)")
    ax[0].set_ylim(0, 8)
    ax[0].set_xlabel("tokens (M)")
    ax[0].set_ylabel("cross-entropy (nats)")
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    ax[1].plot(tok, col("pk_acc"), lw=0.6, label="passkey rows")
    ax[1].plot(tok, col("mk_acc"), lw=0.6, label="multi-key rows")
    ax[1].set_xlabel("tokens (M)")
    ax[1].set_ylabel("answer exact (train batches, per 10 steps)")
    ax[1].legend()
    ax[1].grid(alpha=0.3)
    ax[2].plot(tok, col("seq_len"), lw=1.0, color="k")
    ax[2].set_xlabel("tokens (M)")
    ax[2].set_ylabel("training sequence length", color="k")
    ax2 = ax[2].twinx()
    ax2.plot(tok, col("lr"), lw=1.0, color="tab:red")
    ax2.set_ylabel("learning rate", color="tab:red")
    ax[2].grid(alpha=0.3)
    fig.suptitle("adamas-tiny-8k training")
    fig.tight_layout()
    fig.savefig(dst, dpi=80)
    print("wrote", dst)


if __name__ == "__main__":
    main()
