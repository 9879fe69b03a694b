#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (fuzz/: safetensors files and shard indexes,
# config.json, tokenizer.json, tokenizer text and ids, policy strings).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [BUILD_DIR]      (defaults: 20, build-fuzz)
#
# Configures a clang build with ASan + UBSan and libFuzzer coverage (ADAMAS_SANITIZE=ON,
# ADAMAS_FUZZ=ON, CPU only), builds only the fuzz targets, runs each for SECONDS with the target's
# dictionary (fuzz/dict/<target>.dict) when there is one, and prints a table. Each target works on
# BUILD_DIR/fuzz-corpus/<target>/: its seed corpus (fuzz/corpus/<target>/) copied in, plus what
# earlier runs found (kept, so that runs build on each other; the repository is never written).
# Exits non-zero when any target finds something (a crash, a sanitizer report, a leak, a failed
# FUZZ_CHECK, an exception other than adamas::Error, a timeout or running out of memory); the
# inputs are kept in BUILD_DIR/fuzz-findings/<target>/ and the logs in BUILD_DIR/fuzz-logs/.
# Reproduce one with: BUILD_DIR/fuzz/<target> BUILD_DIR/fuzz-findings/<target>/crash-...
#
# Environment: FUZZ_TARGETS="a b" runs a subset; FUZZ_JOBS=N runs N targets at a time (default 1);
# FUZZ_BUILD_JOBS=N build parallelism (default: all cores); FUZZ_ARGS extra libFuzzer flags;
# ADAMAS_FUZZ_TMPDIR where the targets write the files they load (default /dev/shm, else $TMPDIR).
set -euo pipefail

secs=${1:-20}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${2:-$root/build-fuzz}
[[ "$build" = /* ]] || build=$PWD/$build
if ! [[ "$secs" =~ ^[0-9]+$ ]] || ((secs == 0)); then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$secs'" >&2
  exit 2
fi

all_targets=(safetensors_fuzz safetensors_index_fuzz config_fuzz tokenizer_json_fuzz
             bpe_encode_fuzz sentencepiece_fuzz policy_fuzz)
read -r -a targets <<< "${FUZZ_TARGETS:-${all_targets[*]}}"
jobs=${FUZZ_JOBS:-1}

command -v clang++ > /dev/null || { echo "fuzz.sh: clang++ not found (Debian: clang libclang-rt-14-dev libomp-dev)" >&2; exit 2; }

mkdir -p "$build"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DADAMAS_SANITIZE=ON -DADAMAS_FUZZ=ON -DADAMAS_CUDA=OFF -DADAMAS_BUILD_BENCH=OFF \
  > "$build/fuzz-configure.log" 2>&1 || { cat "$build/fuzz-configure.log" >&2; exit 2; }
cmake --build "$build" --target "${targets[@]}" --parallel "${FUZZ_BUILD_JOBS:-$(nproc)}"

corpus=$build/fuzz-corpus
findings=$build/fuzz-findings
logs=$build/fuzz-logs
mkdir -p "$corpus" "$findings" "$logs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_target() {
  local t=$1
  rm -f "$logs/$t.rc" "$logs/$t.seconds"
  mkdir -p "$corpus/$t" "$findings/$t"
  cp -r "$root/fuzz/corpus/$t/." "$corpus/$t/"
  local rc=0 dict=() start=$SECONDS
  touch "$logs/$t.start"  # findings newer than this are this run's
  [[ -f "$root/fuzz/dict/$t.dict" ]] && dict=(-dict="$root/fuzz/dict/$t.dict")
  # -timeout: one input taking this long is a finding (a hang); -rss_limit_mb: so is this much memory.
  # shellcheck disable=SC2086
  "$build/fuzz/$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 -print_final_stats=1 \
    -artifact_prefix="$findings/$t/" "${dict[@]}" ${FUZZ_ARGS:-} "$corpus/$t" > "$logs/$t.log" 2>&1 || rc=$?
  echo "$rc" > "$logs/$t.rc"
  echo $((SECONDS - start)) > "$logs/$t.seconds"
}

echo "fuzzing ${#targets[@]} target(s) for ${secs}s each, $jobs at a time; logs in $logs"
running=0
for t in "${targets[@]}"; do
  [[ -x "$build/fuzz/$t" ]] || { echo "fuzz.sh: unknown target $t" >&2; exit 2; }
  run_target "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait || true

final_stat() {  # final_stat NAME LOG: libFuzzer's final statistic NAME
  sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

failed=0
printf '\n%-24s %12s %9s %9s %15s  %s\n' target executions exec/s seconds corpus result
for t in "${targets[@]}"; do
  log=$logs/$t.log
  rc=$(cat "$logs/$t.rc" 2> /dev/null || echo 1)
  execs=$(final_stat number_of_executed_units "$log")
  rate=$(final_stat average_exec_per_sec "$log")
  took=$(cat "$logs/$t.seconds" 2> /dev/null || echo '?')
  files=$(find "$corpus/$t" -type f | wc -l)
  kb=$(($(du -sb "$corpus/$t" | cut -f1) / 1024))
  found=$(find "$findings/$t" -type f -newer "$logs/$t.start" | wc -l)
  if [[ "$rc" == 0 && "$found" == 0 ]]; then
    result=ok
  else
    failed=1
    first=$(find "$findings/$t" -type f -newer "$logs/$t.start" | head -n 1)
    kind=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer|UndefinedBehaviorSanitizer)[^(]*|runtime error: .*|FUZZ_CHECK failed: .*|an exception other than adamas::Error' "$log" | head -c 100 || true)
    result="FINDING rc=$rc: ${kind:-see log} ${first:+($first)}"
  fi
  printf '%-24s %12s %9s %9s %6s (%4s KB)  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${took:-?}" \
    "$files" "$kb" "$result"
done
if ((failed)); then
  echo "fuzz.sh: findings above; inputs in $findings, logs in $logs" >&2
  exit 1
fi
