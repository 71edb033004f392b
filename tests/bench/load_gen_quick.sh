#!/bin/bash
# A short load_gen run against a real collector, as `make test` runs it (ctest load_gen_quick):
# 2 clients x 5,000 series for 5 s. It keeps the generator building and working (exact totals, no
# overflow, nothing dropped); it checks no timing. The figures come from the long runs in
# docs/BENCHMARKS.md ("Overload").
#   tests/bench/load_gen_quick.sh BUILD_DIR
set -euo pipefail
build="${1:?usage: load_gen_quick.sh BUILD_DIR}"
work="$(mktemp -d /tmp/load_gen_quick.XXXXXX)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
# Port 0 everywhere: the collector picks free ports and writes them to its ready file.
"$build/collector/tally-collector" --data-dir "$work/data" --ingest "tcp://127.0.0.1:*" \
  --http 127.0.0.1:0 --live off --statsd off --no-self-metrics --log-file "$work/log" \
  --limit series_max_per_metric=2000000 --limit series_max_total=2000000 \
  --ready-file "$work/ready.json" &
pid=$!
for _ in $(seq 100); do [ -s "$work/ready.json" ] && break; sleep 0.1; done
[ -s "$work/ready.json" ] || { echo "the collector did not start" >&2; cat "$work/log" >&2; exit 1; }
ingest="$(sed -n 's/.*"ingest":"\([^"]*\)".*/\1/p' "$work/ready.json")"
http="$(sed -n 's/.*"http_port":\([0-9]*\).*/\1/p' "$work/ready.json")"
"$build/tests/bench/load_gen" --ingest "$ingest" --http "127.0.0.1:$http" --collector-pid "$pid" \
  --clients 2 --series 5000 --rate 1 --ramp 1 --duration 5 --sample 1 --probe-every 1
