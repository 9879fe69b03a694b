#!/usr/bin/env bash
# The PyTorch route on the GPU machine: builds the `torch` preset with CUDA, runs the C++ tests of
# what the ops share with the library (PagedDecode, CudaDecode), the Python tests (python/tests)
# and, with `bench`, the decode benchmark (python/bench/decode_tokens.py, BENCH_ARGS).
# Usage (device, repository root): OUT=$OUT bash scripts/device/torch-run.sh [tests] [bench] [smoke]
set -uo pipefail
log=$OUT/torch-run.log
source scripts/device/setup.sh
step "python3 $(python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1)"
step "configure"
cmake --preset torch -DADAMAS_CUDA=ON >>"$log" 2>&1 || { tail -40 "$log"; exit 1; }
step "build"
ninja -C build-torch -j16 >>"$log" 2>&1 || { grep -B2 -A12 "error" "$log" | head -80; exit 1; }
export PYTHONPATH=$PWD/build-torch/python
rc=0
for what in "$@"; do
  case $what in
    tests)
      step "C++: PagedDecode + CudaDecode"
      build-torch/tests/adamas_decode_tests --gtest_filter='PagedDecode*' 2>&1 | tail -3 | tee -a "$log"
      build-torch/tests/adamas_cuda_tests --gtest_filter='CudaDecode*:CudaErrors*' 2>&1 | tail -3 | tee -a "$log"
      step "python tests"
      python3 -m unittest discover -s python/tests -v >"$OUT/python-tests.log" 2>&1 || rc=1
      tail -25 "$OUT/python-tests.log" ;;
    example)
      step "example: generate with the shipped model"
      python3 python/examples/generate.py --model models/adamas-tiny-8k --policy adamas:budget=64 \
        --prompt "The passkey is 71432. Remember it. The grass is green. The sky is blue. What is the passkey? The passkey is" \
        --max-new-tokens 8 2>&1 | tail -8 | tee -a "$log" || rc=1 ;;
    smoke)
      step "smoke"
      python3 "${SMOKE:-smoke.py}" 2>&1 | tee -a "$log" || rc=1 ;;
    bench-op)
      step "bench: decode op vs SDPA backends"
      python3 python/bench/decode_op.py ${OP_ARGS:-} --csv "$OUT/torch-decode-op.csv" 2>&1 | tee "$OUT/torch-bench-op.log" || rc=1 ;;
    bench)
      step "bench"
      python3 python/bench/decode_tokens.py ${BENCH_ARGS:-} --csv "$OUT/torch-decode${BENCH_TAG:-}.csv" 2>&1 | tee "$OUT/torch-bench${BENCH_TAG:-}.log" || rc=1 ;;
  esac
done
step "done rc=$rc"
exit $rc
