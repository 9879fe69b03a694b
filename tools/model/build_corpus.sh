#!/bin/bash
# Build the Adamas training corpus from Debian packages (English prose + C code).
#
#   tools/model/build_corpus.sh            # writes .data/corpus/{train,heldout}.txt
#
# Sources (all Debian 12 "bookworm" main):
#   linux-source-6.1  Documentation/**/*.rst|*.txt (minus translations/) and the
#                     *.c/*.h files of kernel/ mm/ lib/ block/ init/ ipc/ fs/
#   bible-kjv         the King James Bible, rendered by `bible` (one doc per book)
#   dict-gcide        GNU Collaborative International Dictionary of English
#   dict-jargon       the Jargon File
#   dict-foldoc       the Free On-line Dictionary of Computing
#   perl-doc          the Perl manual (*.pod)
#
# The file order is fixed (sorted paths), documents are assigned to the held-out
# split by a hash of their name (about 2%), so the output is byte-identical for the
# same package versions. The versions used are written to .data/corpus/packages.txt.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DATA="${DATA:-$ROOT/.data}"
SRC="$DATA/src"
OUT="$DATA/corpus"
PY=/usr/bin/python3

PKGS="linux-source-6.1 bible-kjv bible-kjv-text dict-gcide dict-jargon dict-foldoc perl-doc"
if ! dpkg -s $PKGS >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PKGS
fi
mkdir -p "$SRC" "$OUT"
dpkg-query -W -f='${Package} ${Version}\n' $PKGS | tee "$OUT/packages.txt"

# 1. kernel subset (only these folders are unpacked; ~11 s)
KV=linux-source-6.1
if [ ! -f "$SRC/$KV/.done" ]; then
  rm -rf "$SRC/$KV"
  tar -C "$SRC" -xJf /usr/src/$KV.tar.xz --wildcards \
    "$KV/Documentation/*" "$KV/kernel/*" "$KV/mm/*" "$KV/lib/*" "$KV/block/*" \
    "$KV/init/*" "$KV/ipc/*" "$KV/fs/*"
  touch "$SRC/$KV/.done"
fi

# 2. King James Bible, unwrapped lines
bible -l 100000 "Gen1:1-Rev22:21" > "$SRC/kjv.txt"

# 3. dictionaries (dictzip = gzip)
for d in gcide jargon foldoc; do zcat /usr/share/dictd/$d.dict.dz > "$SRC/$d.txt"; done

# 4. assemble: fixed order, hash split, documents separated by a line holding only \x1e
"$PY" "$HERE/assemble_corpus.py" --src "$SRC" --kernel "$SRC/$KV" \
  --perl-pod "$(dirname "$(dpkg -L perl-doc | grep '/pod/perl.pod$' | head -1)")" --out "$OUT"
ls -l "$OUT"
sha256sum "$OUT/train.txt" "$OUT/heldout.txt" | tee "$OUT/sha256.txt"
