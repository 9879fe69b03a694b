#!/usr/bin/env bash
# One full GPU run on the device machine (H200): build, CUDA tests, compute-sanitizer memcheck
# and racecheck, then the decode benchmark against our dense kernel and PyTorch SDPA (flash).
# Run from the repository root with .devdeps carried (../shared/device/pack-deps.sh packs
# Highway, which that machine lacks). Writes logs, CSVs, the plot and a summary under $OUT.
# Usage: scripts/device/cuda-run.sh [all|test|profile|bench] [extra args for both benchmarks]
set -uo pipefail
what=${1:-all}; shift || true
OUT=${OUT:-/tmp/adamas-out}; mkdir -p "$OUT"
export CMAKE_PREFIX_PATH=$PWD/.devdeps/usr LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu
export PYTHONUNBUFFERED=1
log=$OUT/run.log
step() { echo "== $(date +%T) $*" | tee -a "$log"; }

step "device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv | tee -a "$log"
step "configure + build"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DADAMAS_BUILD_MODEL=OFF \
  -DADAMAS_CUDA=ON >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
ninja -C build-gpu adamas_cuda_tests adamas_cuda_bench adamas_core_tests >>"$log" 2>&1 \
  || { grep -B2 -A20 "error" "$log" | head -80; exit 1; }

if [[ $what == all || $what == test ]]; then
  step "CUDA tests"
  timeout 240 build-gpu/tests/adamas_cuda_tests --gtest_brief=1 2>&1 | tee "$OUT/tests.log" | tail -25
  step "compute-sanitizer memcheck (small shapes)"
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 \
    build-gpu/tests/adamas_cuda_tests --gtest_brief=1 --gtest_filter='-*Large*' >"$OUT/sanitizer.log" 2>&1
  echo "memcheck exit $?" | tee -a "$OUT/sanitizer.log"; tail -4 "$OUT/sanitizer.log"
  step "compute-sanitizer racecheck (small shapes)"
  timeout 200 compute-sanitizer --tool racecheck --error-exitcode 9 \
    build-gpu/tests/adamas_cuda_tests --gtest_brief=1 --gtest_filter='-*Large*' >>"$OUT/sanitizer.log" 2>&1
  echo "racecheck exit $?" | tee -a "$OUT/sanitizer.log"; tail -4 "$OUT/sanitizer.log"
fi

if [[ $what == all || $what == profile ]]; then
  step "ncu: one sparse and one dense step per heads config, 128K, batch 1, budget 256"
  for heads in 32/32 32/8; do
    timeout 200 ncu --clock-control none --section SpeedOfLight --section Occupancy \
      --kernel-name regex:'estimate|count_kernel|write_kernel|attention' --launch-skip 10 --launch-count 10 \
      build-gpu/bench/adamas_cuda_bench --heads $heads --contexts 131072 --batches 1 --budgets 256 \
      --reps 3 --warmup 1 --no-graph >>"$OUT/ncu.log" 2>&1
  done
  grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per" "$OUT/ncu.log" | head -120
fi

if [[ $what == all || $what == bench ]]; then
  step "decode benchmark (ours)"
  timeout 400 build-gpu/bench/adamas_cuda_bench --csv "$OUT/cuda_decode.csv" "$@" 2>"$OUT/bench.err" \
    | tee "$OUT/bench.txt" | tail -60
  tail -3 "$OUT/bench.err"
  step "SDPA baseline"
  timeout 300 python3 bench/sdpa_baseline.py --csv "$OUT/sdpa.csv" "$@" 2>&1 | tee "$OUT/sdpa.txt" | tail -30
  step "plot + summary"
  python3 bench/plot_cuda_bench.py "$OUT/cuda_decode.csv" "$OUT/sdpa.csv" --png "$OUT/cuda_decode.png" \
    --md "$OUT/summary.md" 2>&1 | tail -40
fi
step "done"
