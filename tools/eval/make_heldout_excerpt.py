#!/usr/bin/python3
"""Writes tools/eval/data/heldout_excerpt.txt: the held-out text of `adamas eval ppl`.

Eight documents of the model's held-out split (.data/corpus/heldout.txt, built by
tools/model/build_corpus.sh; sha256 fcc17ed7...7c9378), chosen by name for a mix of kernel C
code, kernel documentation, the Perl manual and the two dictionaries, each cut to its first
MAX_BYTES bytes at a line end. Same format as the corpus: every document is followed by a line
holding only the byte 0x1e. SentencePiece pieces never contain a newline, so the tokens of a cut
document are the first tokens of the whole document.

It also writes tools/eval/data/long_excerpt.txt, for perplexity at 16K+ positions with
models/adamas-tiny-32k: four documents cut to LONG_BYTES (about 23K tokens): a held-out kernel
source and Python's argparse.py (the development split, --skip-docs 0 --docs 2), then another
held-out kernel source and Python's subprocess.py (the held-out split, --skip-docs 2 --docs 2). The Python files are out of distribution (libpython3.11-minimal).

  /usr/bin/python3 tools/eval/make_heldout_excerpt.py [--corpus .data/corpus]
"""
import argparse, os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAMES = [  # interleaved so that the first k documents are a mix
    "linux/fs/nfs/dir.c",
    "linux/Documentation/driver-api/vfio.rst",
    "linux/block/blk-throttle.c",
    "perl/perlrun.pod",
    "linux/fs/xfs/libxfs/xfs_ialloc.c",
    "dict/gcide/00330",
    "linux/Documentation/input/devices/elantech.rst",
    "dict/foldoc/00004",
]
MAX_BYTES = 24000
LONG = [  # (corpus name or absolute path); dev: the first two, held-out: the last two
    "linux/kernel/rcu/rcutorture.c",
    "/usr/lib/python3.11/argparse.py",
    "linux/kernel/cgroup/cgroup.c",
    "/usr/lib/python3.11/subprocess.py",
]
LONG_BYTES = 64000


def cut(d, limit):
    return d if len(d) <= limit else d[: d.rindex(b"\n", 0, limit) + 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.path.join(ROOT, ".data", "corpus"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tools", "eval", "data", "heldout_excerpt.txt"))
    ap.add_argument("--out-long", default=os.path.join(ROOT, "tools", "eval", "data", "long_excerpt.txt"))
    a = ap.parse_args()
    with open(os.path.join(a.corpus, "heldout.txt"), encoding="utf-8") as f:
        docs = f.read().split("\x1e\n")[:-1]
    with open(os.path.join(a.corpus, "heldout_docs.txt")) as f:
        names = f.read().split("\n")[:-1]
    assert len(docs) == len(names), (len(docs), len(names))
    by_name = dict(zip(names, docs))
    for names_, limit, path in ((NAMES, MAX_BYTES, a.out), (LONG, LONG_BYTES, a.out_long)):
        out = []
        for n in names_:
            d = open(n, "rb").read() if n.startswith("/") else by_name[n].encode("utf-8")
            d = cut(d, limit)
            out.append(d.decode("utf-8"))
            print("%-50s %6d bytes" % (n, len(d)))
        with open(path, "w", encoding="utf-8", newline="") as f:
            for d in out:
                f.write(d + "\x1e\n")
        print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
