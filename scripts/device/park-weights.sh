#!/usr/bin/env bash
# The device tool sends at most 64 MiB of working tree, and the two trained models' weights are
# 2 × 36.7 MB. Before a device call that does not need the 32K model, park its weights outside
# the tree (in .data/, which git ignores); restore them after:
#   bash scripts/device/park-weights.sh park      # then run(...)
#   bash scripts/device/park-weights.sh restore
# `git status` shows the file as deleted while it is parked. Name other weights as extra
# arguments (repository-relative paths) to park those instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
what=${1:-}
shift || true
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(models/adamas-tiny-32k/model.safetensors)
case "$what" in
  park)
    for f in "${files[@]}"; do
      [ -f "$f" ] || { echo "park: $f is not here (already parked?)" >&2; exit 1; }
      mkdir -p ".data/parked/$(dirname "$f")"
      mv "$f" ".data/parked/$f"
      echo "parked $f"
    done ;;
  restore)
    for f in "${files[@]}"; do
      [ -f ".data/parked/$f" ] || { echo "restore: .data/parked/$f does not exist" >&2; exit 1; }
      mv ".data/parked/$f" "$f"
      echo "restored $f"
    done ;;
  *) echo "usage: $0 park|restore [repository-relative files]" >&2; exit 2 ;;
esac
