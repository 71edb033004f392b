#!/bin/bash
# How 0.1.0-data.tar.gz was made, for the record (tst_upgrade reads it; nothing runs this).
#
#   git worktree add /tmp/v010 65b6d54 && cd /tmp/v010 && cmake --preset default &&
#   cmake --build build --target tally-collector tally-cli
#   tests/collector/data/upgrade/make-0.1.0-fixture.sh /tmp/v010/build/collector/tally-collector \
#       /tmp/v010/build/sdk/cli/tally
#
# Tally 0.1.0's collector gets counters, a gauge, a distribution and a StatsD counter; a
# checkpoint writes them to its SQLite files; more counts arrive and it is killed with SIGKILL
# at once, so the directory holds both stored buckets and a write-ahead log to replay. Every
# resolution is kept for 100 years so the fixture's buckets never age out of a test.
set -eu
OLD=$1
CLI=$2
OUT=${3:-$(pwd)/0.1.0-data.tar.gz}
WORK=$(mktemp -d)
"$OLD" --data-dir "$WORK/data" --shards 2 --retention 1s:100y,10s:100y,1m:100y,1h:100y \
  --checkpoint 1s --lateness 1s --http 127.0.0.1:17181 --ingest tcp://127.0.0.1:17180 \
  --statsd 127.0.0.1:17182 --live off 2>"$WORK/collector.log" &
PID=$!
sleep 1
date +%s > "$WORK/created_unix"
T="--ingest tcp://127.0.0.1:17180"
for v in 1 2 3 4 5; do $CLI $T emit upgrade.hits $v --tag k=a; done
$CLI $T emit upgrade.hits 10 --tag k=b
$CLI $T emit upgrade.depth 7 --kind gauge
for v in 10 20 30; do $CLI $T emit upgrade.latency $v --kind distribution; done
printf 'upgrade.statsd:3|c\nupgrade.statsd:4|c\n' > /dev/udp/127.0.0.1/17182
sleep 4  # checkpoints and final buckets: these are in SQLite now
$CLI $T emit upgrade.hits 100 --tag k=wal
$CLI $T emit upgrade.hits 200 --tag k=wal
kill -9 $PID
wait $PID || true
tar -C "$WORK" -czf "$OUT" data created_unix
echo "wrote $OUT"
rm -rf "$WORK"
