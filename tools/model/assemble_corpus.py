#!/usr/bin/python3
"""Assemble the corpus from the unpacked Debian sources (called by build_corpus.sh).

Output: OUT/train.txt and OUT/heldout.txt. Each document is followed by a line that
holds only the byte 0x1e (record separator); 0x1e, NUL and CR are removed from the
documents themselves. Documents are visited in a fixed (sorted) order and a document
goes to the held-out split iff int(sha1(name)[:8], 16) % 1000 < HELDOUT_PER_MILLE.
"""
import argparse, hashlib, os, re, sys

SEP = "\x1e\n"
HELDOUT_PER_MILLE = 20  # 2 %


def clean(text):
    text = text.replace("\r", "").replace("\x00", "").replace("\x1e", "")
    if not text.endswith("\n"):
        text += "\n"
    return text


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", errors="replace")


def files_under(root, exts, exclude=()):
    out = []
    for dp, dns, fns in os.walk(root):
        dns.sort()
        rel = os.path.relpath(dp, root)
        if any(rel == e or rel.startswith(e + "/") for e in exclude):
            continue
        for fn in sorted(fns):
            if fn.endswith(exts):
                out.append(os.path.join(dp, fn))
    return sorted(out)


def chunk_paragraphs(text, target):
    """Split at blank lines into chunks of about `target` characters."""
    paras = re.split(r"(?<=\n)\n", text)
    cur, n = [], 0
    for p in paras:
        cur.append(p)
        n += len(p) + 1
        if n >= target:
            yield "\n".join(cur)
            cur, n = [], 0
    if cur:
        yield "\n".join(cur)


def docs(args):
    k = args.kernel
    # kernel documentation (English only)
    for p in files_under(os.path.join(k, "Documentation"), (".rst", ".txt"), exclude=("translations",)):
        yield "linux/" + os.path.relpath(p, k), read(p)
    # kernel C sources
    for sub in ("block", "fs", "init", "ipc", "kernel", "lib", "mm"):
        for p in files_under(os.path.join(k, sub), (".c", ".h")):
            yield "linux/" + os.path.relpath(p, k), read(p)
    # King James Bible: one document per book (a book starts at "<Name> 1")
    kjv = read(os.path.join(args.src, "kjv.txt")).split("\n")
    starts = [i for i, l in enumerate(kjv) if re.fullmatch(r"[1-3A-Z][A-Za-z ]* 1", l)]
    starts.append(len(kjv))
    for a, b in zip(starts[:-1], starts[1:]):
        yield "kjv/" + kjv[a][:-2], "\n".join(kjv[a:b])
    # dictionaries, in chunks of ~64 kB at blank lines
    for d in ("foldoc", "gcide", "jargon"):
        for i, c in enumerate(chunk_paragraphs(read(os.path.join(args.src, d + ".txt")), 65536)):
            yield "dict/%s/%05d" % (d, i), c
    # Perl manual
    for p in files_under(args.perl_pod, (".pod",)):
        yield "perl/" + os.path.basename(p), read(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--perl-pod", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    stats = {}
    with open(os.path.join(args.out, "train.txt"), "w", encoding="utf-8") as ft, \
         open(os.path.join(args.out, "heldout.txt"), "w", encoding="utf-8") as fh, \
         open(os.path.join(args.out, "heldout_docs.txt"), "w") as fl:
        for name, text in docs(args):
            text = clean(text)
            if len(text.strip()) < 64:
                continue
            held = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 1000 < HELDOUT_PER_MILLE
            (fh if held else ft).write(text + SEP)
            if held:
                fl.write(name + "\n")
            src = name.split("/")[0] + ("/" + name.split("/")[1] if name.startswith(("linux/", "dict/")) else "")
            if name.startswith("linux/Documentation"):
                src = "linux/Documentation"
            elif name.startswith("linux/"):
                src = "linux/code"
            s = stats.setdefault(src, [0, 0, 0])
            s[0] += 1
            s[2 if held else 1] += len(text.encode())
    tot = [0, 0]
    print("%-22s %6s %14s %12s" % ("source", "docs", "train bytes", "held bytes"))
    for k in sorted(stats):
        n, tr, he = stats[k]
        tot[0] += tr; tot[1] += he
        print("%-22s %6d %14d %12d" % (k, n, tr, he))
    print("%-22s %6s %14d %12d" % ("TOTAL", "", tot[0], tot[1]))


if __name__ == "__main__":
    main()
