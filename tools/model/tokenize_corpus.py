#!/usr/bin/python3
"""Tokenize the corpus with tokenizer.model into uint16 token streams.

  /usr/bin/python3 tools/model/tokenize_corpus.py      # .data/corpus/*.txt -> .data/carry/*.u16.xz

Each document (separated by a line holding only 0x1e in the corpus files) becomes
[BOS] + sp.encode(doc) + [EOS]; the streams are concatenated in corpus order and written
as little-endian uint16, compressed with xz -9 (Python's lzma reads it) so that they travel to the
GPU machine (which carries at most 64 MiB per call). tokenizer.model is copied beside them.
"""
import argparse, os, shutil, subprocess, sys
from multiprocessing import Pool

import numpy as np
import sentencepiece as spm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_sp = None


def _init(path):
    global _sp
    _sp = spm.SentencePieceProcessor(model_file=path)


def _enc(doc):
    return np.array([1] + _sp.encode(doc) + [2], dtype=np.uint16)


def docs(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    parts = text.split("\x1e\n")
    assert parts[-1] == ""
    return parts[:-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, ".data"))
    ap.add_argument("--procs", type=int, default=2)
    a = ap.parse_args()
    tok = os.path.join(a.data, "tok", "tokenizer.model")
    out = os.path.join(a.data, "carry")
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(tok, os.path.join(out, "tokenizer.model"))
    for split in ("heldout", "train"):
        d = docs(os.path.join(a.data, "corpus", split + ".txt"))
        nbytes = sum(len(x.encode()) for x in d)
        with Pool(a.procs, initializer=_init, initargs=(tok,)) as p:
            arrs = p.map(_enc, d, chunksize=16)
        ids = np.concatenate(arrs)
        raw = os.path.join(a.data, "tok", split + ".u16")
        ids.astype("<u2").tofile(raw)
        dst = os.path.join(out, split + ".u16.xz")
        with open(dst, "wb") as f:
            subprocess.run(["xz", "-9", "-c", raw], stdout=f, check=True)
        print("%-8s docs %6d  bytes %11d  tokens %10d  bytes/token %.3f  -> %s (%d bytes)" % (
            split, len(d), nbytes, len(ids), nbytes / len(ids), dst, os.path.getsize(dst)), flush=True)


if __name__ == "__main__":
    main()
