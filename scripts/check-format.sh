#!/usr/bin/env bash
# Fails (listing the files) when a tracked C++/CUDA source differs from clang-format's output
# (.clang-format; Debian 12's clang-format 14). Fix with: git ls-files '*.cc' '*.h' '*.cu' '*.cuh'
# | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed" >&2; exit 1; }
bad=$(git ls-files '*.cc' '*.h' '*.cu' '*.cuh' | while read -r f; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || echo "$f"
done)
if [[ -n $bad ]]; then
  echo "check-format: these files are not clang-formatted:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "check-format: $(git ls-files '*.cc' '*.h' '*.cu' '*.cuh' | wc -l) files clang-formatted"
