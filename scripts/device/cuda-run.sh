#!/usr/bin/env bash
# One full GPU run on the device machine (H200): build, CUDA tests, compute-sanitizer memcheck
# and racecheck, an ncu profile of one decode step, then the decode benchmark against our dense
# kernel and every PyTorch SDPA backend (cuDNN, flash, memory-efficient, default selection; the
# fastest is the baseline). Run from the repository root with .devdeps carried
# (../shared/device/pack-deps.sh packs Highway, which that machine lacks). Writes at most eight
# files under $OUT (the device tool's limit): run.log, tests.log, ncu.log, the two CSVs, the two
# plots and summary.md.
# Usage: scripts/device/cuda-run.sh [all|test|profile|bench|test+bench] [extra args for both benchmarks]
set -uo pipefail
what=${1:-all}; shift || true
OUT=${OUT:-/tmp/adamas-out}; mkdir -p "$OUT"
log=$OUT/run.log
source scripts/device/setup.sh

step "device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv | tee -a "$log"
step "configure + build"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DADAMAS_BUILD_MODEL=OFF \
  -DADAMAS_CUDA=ON >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
ninja -C build-gpu adamas_cuda_tests adamas_cuda_bench >>"$log" 2>&1 \
  || { grep -B2 -A20 "error" "$log" | head -80; exit 1; }
tests=build-gpu/tests/adamas_cuda_tests

if [[ $what == all || $what == test || $what == test+bench ]]; then
  step "CUDA tests"
  timeout 240 $tests --gtest_brief=1 >"$OUT/tests.log" 2>&1; echo "tests exit $?" | tee -a "$OUT/tests.log"
  grep -E "FAILED|PASSED|tests from" "$OUT/tests.log" | tail -8
  step "compute-sanitizer memcheck (small shapes)"
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 \
    $tests --gtest_brief=1 --gtest_filter='-*Large*' >>"$OUT/tests.log" 2>&1
  echo "memcheck exit $?" | tee -a "$OUT/tests.log"
  step "compute-sanitizer racecheck (small shapes)"
  timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 \
    $tests --gtest_brief=1 --gtest_filter='-*Large*' >>"$OUT/tests.log" 2>&1
  echo "racecheck exit $?" | tee -a "$OUT/tests.log"
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|FAILED" "$OUT/tests.log" | tail -8
fi

if [[ $what == all || $what == profile ]]; then
  step "ncu: sparse and dense steps, 128K, batch 1, budget 256"
  for heads in 32/32 32/8; do
    timeout 200 ncu --clock-control none --section SpeedOfLight --section Occupancy \
      --section WarpStateStats --section LaunchStats \
      --kernel-name regex:'estimate|count_kernel|write_kernel|attention' --launch-count 24 \
      build-gpu/bench/adamas_cuda_bench --heads $heads --contexts 131072 --batches 1 --budgets 256 \
      --reps 3 --warmup 1 --no-graph >>"$OUT/ncu.log" 2>&1
  done
  grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Stall" "$OUT/ncu.log" | head -100
fi

if [[ $what == all || $what == bench || $what == test+bench ]]; then
  step "decode benchmark (ours)"
  timeout 400 build-gpu/bench/adamas_cuda_bench --csv "$OUT/cuda_decode.csv" "$@" 2>>"$log" | tee -a "$log" | tail -12
  step "SDPA baseline (every SDPA backend)"
  timeout 300 python3 bench/sdpa_baseline.py --csv "$OUT/sdpa.csv" "$@" >>"$log" 2>&1
  tail -3 "$log"
  step "plot + summary"
  python3 bench/plot_cuda_bench.py "$OUT/cuda_decode.csv" "$OUT/sdpa.csv" --png "$OUT/cuda_decode.png" \
    --md "$OUT/summary.md" 2>&1 | tail -40
fi
step "done"
