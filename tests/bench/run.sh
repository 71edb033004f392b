#!/usr/bin/env bash
# Runs every benchmark executable in $BUILD_DIR/tests/bench/ (default build/) and prints its
# results. Extra arguments are passed to each benchmark (e.g. --quick).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
dir="$build/tests/bench"
if [ ! -d "$dir" ]; then
  echo "run.sh: no $dir; build first (make build)" >&2
  exit 1
fi
echo "Tally benchmarks: $(nproc) cores, $(uname -srm), $(date -u +%Y-%m-%dT%H:%MZ)"
status=0
found=0
for bin in "$dir"/bench_*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  found=1
  echo
  echo "== $(basename "$bin")"
  "$bin" "$@" || { echo "$(basename "$bin") failed with status $?" >&2; status=1; }
done
[ "$found" -eq 1 ] || echo "run.sh: no bench_* executables in $dir" >&2
# StatsD side by side with Netdata (statsd_bench.sh); with --quick: one short step, Tally only.
echo
echo "== statsd_bench.sh"
quick=()
for a in "$@"; do [ "$a" = --quick ] && quick=(--quick); done
BUILD_DIR="$build" "$root/tests/bench/statsd_bench.sh" "${quick[@]}" || { echo "statsd_bench.sh failed" >&2; status=1; }
exit $status
