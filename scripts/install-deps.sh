#!/usr/bin/env bash
# Installs the Debian 12 packages Adamas builds and tests with. Idempotent; needs root (or sudo).
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config
  libhwy-dev            # Highway: portable SIMD with run-time dispatch (AVX-512/AVX2/scalar)
  libfmt-dev            # formatting for messages and tables
  libcli11-dev          # command-line parsing for the adamas CLI
  nlohmann-json3-dev    # JSON (configs, bench output)
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-dev       # sgemm/sgemv for the model runtime's matrix products
  libsentencepiece-dev  # SentencePiece tokenizer.model (Llama 1/2, Mistral)
  libicu-dev            # Unicode categories + NFC for byte-level BPE pre-tokenization
  python3-numpy         # tools/model_check: peer-check checkpoints and numpy reference logits
  clang libclang-rt-14-dev libomp-dev  # the sanitizer + libFuzzer build (preset asan, fuzz/)
  clang-format          # scripts/check-format.sh
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
