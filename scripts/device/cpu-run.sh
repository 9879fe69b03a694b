#!/usr/bin/env bash
# One run of the CPU side on the GPU machine's host (16 cores, Ubuntu, GCC 13): the CPU build and
# its whole test suite with GCC 13 (Debian 12 CI builds with GCC 12), then the CPU decode
# benchmarks of the CPU end-to-end issue on a larger host than the 2-core VM: the decode products
# (bench-matvec, Llama-3.2-1B shapes), bench-e2e --device cpu on a random-weight Llama-3.2-1B-shaped
# checkpoint and on the shipped model, and one layer's decode attention (adamas bench, 32 heads).
# Run from the repository root with .devdeps carried (see scripts/device/e2e-run.sh). At most
# eight files under $OUT. Usage: scripts/device/cpu-run.sh [all|test|bench|estimator]
# estimator: the sparse decode-attention stages of the paper's estimate (L1 of codes) beside ours
# (dist=ip), one layer, MHA 32/32 and GQA 32/8, 32K and 128K, 1 thread and every core.
set -uo pipefail
what=${1:-all}
OUT=${OUT:-/tmp/adamas-out}; mkdir -p "$OUT"
log=$OUT/cpu-run.log
source scripts/device/setup.sh
B=/tmp/build-cpu
adamas=$B/tools/adamas/adamas

step "host"
{ lscpu | grep -E "Model name|^CPU\(s\)|Thread|Core|Socket|L1d|L2|L3|Flags" | cut -c1-300
  free -g | head -2; g++ --version | head -1; nproc; } >>"$log" 2>&1
step "configure + build (CPU only, $(g++ -dumpfullversion))"
configure_and_build $B OFF

if [[ $what == all || $what == test ]]; then
  step "the CPU test suite (GCC 13)"
  python3 tools/model_check/make_checkpoints.py --out $B/tests/model/model_check --numpy-reference \
    >>"$log" 2>&1
  (cd $B && timeout 240 ctest -j16 --output-on-failure) >"$OUT/cpu-tests.log" 2>&1
  echo "ctest exit $?" | tee -a "$OUT/cpu-tests.log" "$log"
  grep -E "tests passed|tests failed|\(Failed\)|\*\*\*" "$OUT/cpu-tests.log" | tail -12 | tee -a "$log"
  $B/tests/adamas_core_tests --gtest_filter='*SpecialHalf*' 2>&1 | tail -3 | tee -a "$log"
fi

if [[ $what == all || $what == bench ]]; then
  step "bench-matvec: Llama-3.2-1B decode products"
  timeout 150 $adamas bench-matvec --reps 21 --csv "$OUT/cpu-matvec.csv" 2>>"$log" | tee -a "$log" \
    | grep -E "read-only|decode step|^adamas|^openblas"
  step "random Llama-3.2-1B-shaped checkpoint"
  timeout 120 python3 tools/model_check/make_random_checkpoint.py --preset llama3.2-1b \
    --out /tmp/ckpt/llama3.2-1b >>"$log" 2>&1 || echo "checkpoint failed" | tee -a "$log"
  step "bench-e2e --device cpu: Llama-3.2-1B shape"
  timeout 260 $adamas bench-e2e --model /tmp/ckpt/llama3.2-1b --device cpu --contexts 8192,16384 \
    --batches 1 --policies "full,adamas:budget=64,adamas:budget=256" --decode-steps 8 \
    --csv "$OUT/cpu-e2e-llama3.2-1b.csv" 2>>"$log" | tee -a "$log" | tail -12
  step "bench-e2e --device cpu: the shipped model"
  timeout 60 $adamas bench-e2e --model models/adamas-tiny-8k --device cpu --contexts 8000 \
    --batches 1,4 --policies full,adamas --budget 64 --csv "$OUT/cpu-e2e-tiny.csv" 2>>"$log" \
    | tee -a "$log" | tail -8
  step "adamas bench: one layer, 32 heads, 32K and 128K"
  timeout 90 $adamas bench --contexts 32768,131072 --budgets 256 --reps 5 \
    --csv "$OUT/cpu-bench-mha.csv" 2>>"$log" | tee -a "$log" | tail -8
fi
if [[ $what == estimator ]]; then
  for threads in 1 16; do
    for heads in "32 32" "32 8"; do
      set -- $heads
      for policy in adamas adamas:dist=ip; do
        step "adamas bench: $policy, $1/$2 heads, $threads threads"
        timeout 120 $adamas bench --contexts 32768,131072 --budgets 256 --reps 7 --heads $1 \
          --kv-heads $2 --threads $threads --policy $policy \
          --csv "$OUT/est-$threads-$1x$2-${policy//[:=,]/_}.csv" 2>>"$log" | tee -a "$log" | tail -3
      done
    done
  done
  (cd $OUT && python3 - <<'PY'
import csv, glob
rows = []
for f in sorted(glob.glob("est-*.csv")):
    rows += list(csv.DictReader(open(f)))
if rows:
    with open("estimator-bench.csv", "w", newline="") as o:
        w = csv.DictWriter(o, fieldnames=list(rows[0].keys()))
        w.writeheader(); w.writerows(rows)
PY
  ) && rm -f "$OUT"/est-*.csv
fi
step "done"
