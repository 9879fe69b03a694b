#!/usr/bin/env bash
# The full-size evaluation of docs/results (issue 6), from the repository root:
#   bash tools/eval/run_full.sh [build dir, default build] [out dir, default docs/results]
# Each step prefills once per prompt/document and decodes every policy × budget from it; jobs run
# in parallel (one thread each), so the times scale with the cores. Logs go beside the CSVs.
set -euo pipefail
B=${1:-build}
OUT=${2:-docs/results}
A=$B/tools/adamas/adamas
mkdir -p "$OUT"
POLICIES='full;oracle;adamas;adamas:thresholds=calibrated;adamas:gqa=shared;quest;streaming'
"$A" eval passkey --out-dir "$OUT" --lengths 1024,2048,4096,8192 --depths 0,0.25,0.5,0.75,1 \
  --trials 2 --policies "$POLICIES" --budgets 16,32,64,128,256,512,1024,2048,4096 \
  2>&1 | tee "$OUT/passkey.log"
"$A" eval ppl --out-dir "$OUT" --docs 2 --prefix 256 --tokens 2048 --bucket 256 \
  --policies "$POLICIES" --budgets 16,32,64,128,256,512,1024 2>&1 | tee "$OUT/ppl.log"
"$A" eval recall --out-dir "$OUT" --lengths 8192 --depths 0.25,0.75 --text-docs 2 \
  --text-tokens 4096 --steps 4 2>&1 | tee "$OUT/recall.log"
/usr/bin/python3 tools/eval/plot_eval.py "$OUT"
