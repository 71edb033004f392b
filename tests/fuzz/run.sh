#!/usr/bin/env bash
# Builds the libFuzzer harnesses (preset fuzz: clang, ASan + UBSan, build-fuzz/) and runs each for
# SECONDS (default 5) on a copy of its seed corpus. Any crash, leak, UB or timeout fails the run and
# leaves the input in build-fuzz/artifacts/<name>/. Usage: tests/fuzz/run.sh [SECONDS] [NAME...]
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-5}"
shift || true
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(batch statsd promql query_params wal chunk dashboard config)
cd "$src"
[ -f build-fuzz/build.ninja ] || cmake --preset fuzz >/dev/null
cmake --build build-fuzz --target fuzzers -j "${JOBS:-2}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for n in "${names[@]}"; do
  work="build-fuzz/corpus-run/$n"
  art="build-fuzz/artifacts/$n"
  mkdir -p "$work" "$art"
  log="build-fuzz/fuzz-$n.log"
  if build-fuzz/tests/fuzz/fuzz_"$n" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$art/" \
      "$work" "tests/fuzz/corpus/$n" >"$log" 2>&1; then
    echo "fuzz_$n: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in ${seconds}s)"
  else
    echo "fuzz_$n: FAILED, see $log and $art/"; tail -40 "$log"; status=1
  fi
done
exit $status
