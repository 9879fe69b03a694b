#!/usr/bin/env bash
# One device run of the CUDA model runtime (H200): build everything, the GPU tests (kernels, model
# runtime against the CPU runtime and Hugging Face references), the passkey demo on the GPU,
# compute-sanitizer on a short generate, then the end-to-end benchmark on random-weight
# checkpoints of real shapes against Hugging Face transformers (SDPA) in the same run.
# Run from the repository root with .devdeps carried: ../shared/device/pack-deps.sh (Highway),
# then scripts/device/pack-icu-slim.sh (ICU, small enough for the 64 MiB tree limit).
# Writes at most eight files under $OUT.
# Usage: scripts/device/e2e-run.sh [test|bench|all] [quick|8b]
#   quick: Llama-3-8B shape at 8K, batch 1, no Hugging Face run; 8b: the full grid on the
#   Llama-3-8B shape only (no Llama-2-7B run).
set -uo pipefail
what=${1:-all}; quick=${2:-}
OUT=${OUT:-/tmp/adamas-out}; mkdir -p "$OUT"
log=$OUT/run.log
source scripts/device/setup.sh
B=/tmp/build-gpu
adamas=$B/tools/adamas/adamas

step "device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv | tee -a "$log"
step "configure + build"
configure_and_build $B ON

if [[ $what == all || $what == test ]]; then
  step "CUDA kernel tests"
  timeout 300 $B/tests/adamas_cuda_tests --gtest_brief=1 >"$OUT/tests.log" 2>&1
  echo "kernel tests exit $?" | tee -a "$OUT/tests.log"
  timeout 120 $B/tests/adamas_cuda_model_tests --gtest_brief=1 >>"$OUT/tests.log" 2>&1
  echo "model kernel tests exit $?" | tee -a "$OUT/tests.log"
  step "model runtime tests (CPU and CUDA)"
  # The peer checks' tiny checkpoints (ctest's fixture needs numpy in /usr/bin/python3, which this
  # machine's system Python lacks; its python3 has it).
  python3 tools/model_check/make_checkpoints.py --out $B/tests/model/model_check --numpy-reference \
    >>"$log" 2>&1
  (cd $B && timeout 400 ctest -R "model_check|PeerCheck|CudaRuntime|Runtime" -j8 \
    --output-on-failure) >>"$OUT/tests.log" 2>&1
  echo "runtime tests exit $?" | tee -a "$OUT/tests.log"
  $B/tests/model/adamas_model_tests --gtest_filter='*Cuda*' 2>&1 | grep -E "^\[ (peer|cuda) " \
    | tee -a "$OUT/tests.log" | tail -30
  grep -E "FAILED|tests from|exit" "$OUT/tests.log" | tail -12
  step "passkey demo on the GPU"
  timeout 120 $adamas demo --device cuda 2>&1 | tee -a "$log" | tail -12
  step "compute-sanitizer memcheck: a short generate (graphs off and on)"
  for g in 0 1; do
    timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 $adamas generate \
      --device cuda --model models/adamas-tiny-8k --prompt "The Linux kernel" --max-new-tokens 8 \
      --policy adamas --budget 16 --dense-layers 1 $([ $g = 0 ] && echo --no-cuda-graphs) \
      >>"$OUT/tests.log" 2>&1
    echo "memcheck (graphs $g) exit $?" | tee -a "$OUT/tests.log"
  done
  grep -E "ERROR SUMMARY" "$OUT/tests.log" | tail -4
fi

if [[ $what == all || $what == bench ]]; then
  if [[ $what == bench ]]; then
    step "decode attention kernel tests (the bench's kernels)"
    timeout 200 $B/tests/adamas_cuda_tests --gtest_brief=1 --gtest_filter='*Attention*:*Decode*' \
      >"$OUT/tests.log" 2>&1
    echo "attention/decode tests exit $?" | tee -a "$OUT/tests.log"
  fi
  step "random checkpoints"
  presets="llama3-8b llama2-7b"; [[ $quick == quick || $quick == 8b ]] && presets=llama3-8b
  for p in $presets; do
    timeout 200 python3 tools/model_check/make_random_checkpoint.py --preset $p --out /tmp/ckpt/$p \
      >>"$log" 2>&1 || echo "checkpoint $p failed" | tee -a "$log"
  done
  if [[ $quick == quick ]]; then
    ctx=8192; batches=1; hfctx=8192
  else
    # 131000, not 131072: the checkpoints' max_position_embeddings is 131072 and bench-e2e counts
    # the decode steps too (HF has no such check, so it keeps 131072).
    ctx=8192,32768,131000; batches=1,16; hfctx=8192,32768,131072
  fi
  step "bench-e2e (ours): llama3-8b"
  timeout 210 $adamas bench-e2e --model /tmp/ckpt/llama3-8b --device cuda --contexts $ctx \
    --batches $batches --csv "$OUT/e2e-llama3-8b.csv" 2>>"$log" | tee -a "$log" | tail -14
  [[ $quick == quick ]] && { step "done (quick)"; exit 0; }
  if [[ $quick != 8b ]]; then
  step "bench-e2e (ours): llama2-7b"
  timeout 70 $adamas bench-e2e --model /tmp/ckpt/llama2-7b --device cuda --contexts 32768 \
    --batches 1 --csv "$OUT/e2e-llama2-7b.csv" 2>>"$log" | tee -a "$log" | tail -8
  fi
  step "Hugging Face transformers + SDPA: llama3-8b"
  timeout 200 python3 bench/hf_e2e_baseline.py --model /tmp/ckpt/llama3-8b --contexts $hfctx \
    --batches $batches --decode-sdpa-backend flash --max-batch-tokens 600000 \
    --csv "$OUT/hf-llama3-8b.csv" 2>>"$log" | tee -a "$log" | tail -10
  python3 bench/plot_e2e.py "$OUT/e2e-llama3-8b.csv" "$OUT/e2e-llama3-8b.png" >>"$log" 2>&1
fi
step "done"
