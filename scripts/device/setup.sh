# Sourced by the device run scripts (bash): unpacks the carried .devdeps (Highway; ICU as a slim
# tarball: the tree that travels is capped at 64 MiB), points CMake and the loader at them, and
# defines step() for a timestamped line in $log. Set OUT and log before sourcing.
# The tree that travels is capped at 64 MiB: park the 32K model's weights first
# (scripts/device/park-weights.sh park; restore afterwards) unless the call needs them.
bash .devdeps/unpack.sh
[ -f .devdeps/icu-slim.tar.xz ] && tar xJf .devdeps/icu-slim.tar.xz -C .devdeps
export CMAKE_PREFIX_PATH=$PWD/.devdeps/usr LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu
export PYTHONUNBUFFERED=1
step() { echo "== $(date +%T) $*" | tee -a "$log"; }
# configure_and_build BUILD_DIR ON|OFF: the Release build, CUDA on or off (exits on failure).
configure_and_build() {
  cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release -DADAMAS_CUDA="$2" \
    -DADAMAS_BUILD_BENCH=OFF >>"$log" 2>&1 || { tail -30 "$log"; exit 1; }
  ninja -C "$1" -j16 >>"$log" 2>&1 || { grep -B2 -A12 "error" "$log" | head -60; exit 1; }
}
