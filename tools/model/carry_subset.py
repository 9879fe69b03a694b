#!/usr/bin/env python3
"""Write a smaller carry folder for a context-extension run on the GPU machine.

The device tool sends at most 64 MiB (the repository, ~50 MB with the shipped model, included),
so the full 28.5 MB train stream cannot travel beside the model it continues. This keeps every
`--every`-th chunk of `--chunk` tokens of .data/tok/train.u16 (chunks spread over every source,
since the corpus is in a fixed source order), and copies heldout.u16.xz and tokenizer.model.

  /usr/bin/python3 tools/model/carry_subset.py --every 2 --out .data/carry32k
"""
import argparse, lzma, os, shutil

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=".data")
    ap.add_argument("--out", default=".data/carry32k")
    ap.add_argument("--chunk", type=int, default=262144, help="tokens per chunk")
    ap.add_argument("--every", type=int, default=2, help="keep one chunk in this many")
    a = ap.parse_args()
    src = os.path.join(a.data, "tok", "train.u16")
    if not os.path.exists(src):
        raise SystemExit("error: %s is missing; run tools/model/tokenize_corpus.py first" % src)
    if a.every < 1 or a.chunk < 1:
        raise SystemExit("error: --every and --chunk must be >= 1")
    s = np.fromfile(src, dtype="<u2")
    keep = np.concatenate([s[i:i + a.chunk] for i in range(0, len(s), a.chunk * a.every)])
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, "train.u16.xz.tmp")
    with lzma.open(tmp, "wb", preset=9) as f:
        f.write(keep.astype("<u2").tobytes())
    os.replace(tmp, os.path.join(a.out, "train.u16.xz"))
    for name in ("heldout.u16.xz", "tokenizer.model"):
        shutil.copyfile(os.path.join(a.data, "carry", name), os.path.join(a.out, name))
    print("kept %d of %d tokens (%.1f %%) -> %s (%d bytes)" % (
        len(keep), len(s), 100.0 * len(keep) / len(s), a.out, os.path.getsize(os.path.join(a.out, "train.u16.xz"))))


if __name__ == "__main__":
    main()
