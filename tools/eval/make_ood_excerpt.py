#!/usr/bin/env python3
"""Write tools/eval/data/ood_excerpt.txt: out-of-distribution text for `adamas eval ppl`.

Six documents the model never saw in any form (its corpus is kernel sources and documentation,
the Perl manual, dictionaries and the KJV): software licences from Debian's base-files and
Python standard-library sources from libpython3.11-minimal, interleaved prose / code, each cut
to its first 24,000 bytes at a line end, each followed by a line holding only 0x1e (the corpus
format). Splits (fixed before any tuning, docs/results/selection-quality.md): documents 1-2 are
the development split (--skip-docs 0 --docs 2), documents 3-4 the held-out one (--skip-docs 2).

  /usr/bin/python3 tools/eval/make_ood_excerpt.py
"""
import hashlib, os

SOURCES = [
    "/usr/share/common-licenses/GPL-3",
    "/usr/lib/python3.11/argparse.py",
    "/usr/share/common-licenses/LGPL-2.1",
    "/usr/lib/python3.11/subprocess.py",
    "/usr/share/common-licenses/MPL-1.1",
    "/usr/lib/python3.11/pathlib.py",
]
CUT = 24000


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "ood_excerpt.txt")
    parts = []
    for path in SOURCES:
        if not os.path.exists(path):
            raise SystemExit("error: %s is missing (Debian 12 packages base-files, libpython3.11-minimal)" % path)
        data = open(path, "rb").read()
        if len(data) > CUT:
            data = data[:data.rindex(b"\n", 0, CUT) + 1]
        parts.append(data + b"\x1e\n")
    blob = b"".join(parts)
    with open(out + ".tmp", "wb") as f:
        f.write(blob)
    os.replace(out + ".tmp", out)
    print("%s: %d documents, %d bytes, sha256 %s" % (out, len(parts), len(blob), hashlib.sha256(blob).hexdigest()))


if __name__ == "__main__":
    main()
