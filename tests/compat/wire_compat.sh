#!/usr/bin/env bash
# Old and new on the wire: Tally 0.1.0's SDK sending to this collector, and this SDK sending to a
# 0.1.0 collector, each with exact totals; and a 0.1.0 SDK against a collector that refuses with
# UNAVAILABLE (backpressure the old SDK predates) still loses nothing.
#
# Builds 0.1.0 (commit 65b6d54: collector, CLI, libtally, and tests/compat/wire_load.cpp against
# its SDK) once into BUILD_DIR/compat-0.1.0 (about 8 minutes on 2 cores; reused afterwards).
# Usage: tests/compat/wire_compat.sh SOURCE_DIR BUILD_DIR   (ctest: wire_compat, label long)
# Exit 0 pass, 1 fail, 77 skipped (the clone has no history to build 0.1.0 from).
set -euo pipefail
src=$1
build=$(cd "$2" && pwd)
old_commit=65b6d54
old=$build/compat-0.1.0
new_collector=$build/collector/tally-collector
new_load=$build/tests/compat/tally_wire_load
cli=$build/sdk/cli/tally

if ! git -C "$src" cat-file -e "$old_commit^{commit}" 2>/dev/null; then
  echo "SKIP: this clone does not hold commit $old_commit (a shallow clone?); fetch the history to run it"
  exit 77
fi

if [ ! -x "$old/load" ] || [ ! -x "$old/build/collector/tally-collector" ]; then
  echo "building Tally 0.1.0 ($old_commit) into $old"
  rm -rf "$old"
  mkdir -p "$old/src"
  git -C "$src" archive "$old_commit" | tar -x -C "$old/src"
  cmake -S "$old/src" -B "$old/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTALLY_BUILD_APP=OFF -DTALLY_BUILD_TESTS=OFF -DTALLY_BUILD_BENCH=OFF >"$old/configure.log"
  cmake --build "$old/build" --target tally-collector tally -j "${JOBS:-2}" >"$old/build.log" ||
    { tail -30 "$old/build.log"; exit 1; }
  lib=$(dirname "$(find "$old/build/sdk" -name 'libtally.so*' -type f | head -1)")
  g++ -std=c++20 -O1 "$src/tests/compat/wire_load.cpp" -o "$old/load.tmp" \
    -I"$old/src/sdk/include" -I"$old/src/common/include" -L"$lib" -ltally -Wl,-rpath,"$lib" -pthread
  mv "$old/load.tmp" "$old/load"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    { kill -9 "$p" && wait "$p"; } 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_collector NAME BINARY [FLAGS...]: sets $ingest and $http
start_collector() {
  local name=$1 bin=$2
  shift 2
  local ip hp
  ip=$(port)
  hp=$(port)
  "$bin" --data-dir "$work/$name" --shards 2 --ingest "tcp://127.0.0.1:$ip" --http "127.0.0.1:$hp" \
    --live off --statsd off --checkpoint 1s --lateness 1s "$@" 2>"$work/$name.log" &
  pids+=($!)
  ingest="tcp://127.0.0.1:$ip"
  http="127.0.0.1:$hp"
  for _ in $(seq 100); do
    curl -sf "http://$http/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "FAIL: collector $name did not answer /healthz"; cat "$work/$name.log"; exit 1
}

# total HTTP METRIC FN: the sum of every step's value over the last 20 minutes
total() {
  "$cli" --collector "http://$1" --format csv query "$2" --from -20m --to now --step 1m --fn "$3" |
    awk -F, 'NR > 1 && $NF != "" { s += $NF } END { printf "%.0f\n", s }'
}

# check NAME HTTP PREFIX LOAD_OUTPUT: the collector holds exactly what the load says it sent
failures=0
check() {
  local name=$1 http=$2 prefix=$3 out=$4
  local want_events want_obs want_sum got_events got_obs got_sum
  want_events=$(sed -n 's/.*events=\([0-9]*\).*/\1/p' <<<"$out")
  want_obs=$(sed -n 's/.*observations=\([0-9]*\).*/\1/p' <<<"$out")
  want_sum=$(sed -n 's/.*observed_sum=\([0-9]*\).*/\1/p' <<<"$out")
  for _ in $(seq 100); do  # acknowledged is logged; the shards apply it a moment later
    got_events=$(total "$http" "$prefix.events" sum)
    got_obs=$(total "$http" "$prefix.latency" count)
    got_sum=$(total "$http" "$prefix.latency" sum)
    [ "$got_events/$got_obs/$got_sum" = "$want_events/$want_obs/$want_sum" ] && break
    sleep 0.2
  done
  if [ "$got_events/$got_obs/$got_sum" = "$want_events/$want_obs/$want_sum" ]; then
    echo "PASS: $name: events $got_events, observations $got_obs, sum $got_sum ($out)"
  else
    echo "FAIL: $name: stored events $got_events, observations $got_obs, sum $got_sum;" \
      "sent $want_events, $want_obs, $want_sum ($out)"
    failures=$((failures + 1))
  fi
}

# 1. The 0.1.0 SDK and this SDK side by side into this collector.
start_collector new "$new_collector"
new_http=$http new_ingest=$ingest
out_old=$("$old/load" "$new_ingest" 101 compat.old_sdk 300 40) || { echo "FAIL: 0.1.0 SDK: $out_old"; failures=$((failures + 1)); }
out_new=$("$new_load" "$new_ingest" 102 compat.new_sdk 300 40) || { echo "FAIL: new SDK: $out_new"; failures=$((failures + 1)); }
check "0.1.0 SDK -> this collector" "$new_http" compat.old_sdk "$out_old"
check "this SDK -> this collector" "$new_http" compat.new_sdk "$out_new"

# 2. This SDK into a 0.1.0 collector.
start_collector old "$old/build/collector/tally-collector"
out=$("$new_load" "$ingest" 103 compat.to_old 300 40) || { echo "FAIL: new SDK -> 0.1.0: $out"; failures=$((failures + 1)); }
check "this SDK -> 0.1.0 collector" "$http" compat.to_old "$out"

# 3. A 0.1.0 SDK against a collector that answers UNAVAILABLE (shards taking 200 ms per work item
# behind the smallest budget, 64 KiB, and batches of 2000 series: the second batch arrives while
# the first, larger than the budget, is still applied).
start_collector slow "$new_collector" --debug-apply-delay 200ms --max-queued-bytes 65536
out=$("$old/load" "$ingest" 104 compat.backpressure 100 2000) || { echo "FAIL: 0.1.0 SDK under backpressure: $out"; failures=$((failures + 1)); }
check "0.1.0 SDK -> this collector refusing with UNAVAILABLE" "$http" compat.backpressure "$out"
unavailable=$(sed -n 's/.*unavailable=\([0-9]*\).*/\1/p' <<<"$out")
# The 0.1.0 SDK sends few, large batches, so whether one arrives while the queue is over its
# budget depends on timing: seen in 2 of 5 runs on an idle 2-core machine. Said, not failed.
if [ "${unavailable:-0}" -eq 0 ]; then
  echo "NOTE: no UNAVAILABLE this run, so the backpressure case only checked exact totals ($out)"
fi

if [ "$failures" -ne 0 ]; then
  for f in "$work"/*.log; do echo "--- $f"; tail -20 "$f"; done
  exit 1
fi
echo "wire compatibility: all cases exact"
