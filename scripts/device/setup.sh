# Sourced by the device run scripts (bash): unpacks the carried .devdeps (Highway; ICU as a slim
# tarball: the tree that travels is capped at 64 MiB), points CMake and the loader at them, and
# defines step() for a timestamped line in $log. Set OUT and log before sourcing.
bash .devdeps/unpack.sh
[ -f .devdeps/icu-slim.tar.xz ] && tar xJf .devdeps/icu-slim.tar.xz -C .devdeps
export CMAKE_PREFIX_PATH=$PWD/.devdeps/usr LD_LIBRARY_PATH=$PWD/.devdeps/usr/lib/x86_64-linux-gnu
export PYTHONUNBUFFERED=1
step() { echo "== $(date +%T) $*" | tee -a "$log"; }
