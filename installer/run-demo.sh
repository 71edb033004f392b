#!/usr/bin/env bash
# `make run`: a collector on the default ports with its data in ./data, two demo emitters, and
# the dashboard on the demo dashboard. With a display the window opens and closing it stops
# everything; without one, a dashboard PNG is written after ~15 s of data and the collector and
# emitters keep running in the foreground until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
COLLECTOR=$BUILD_DIR/collector/tally-collector
EMITTER=$BUILD_DIR/sdk/tally-demo-emitter
DASHBOARD=$BUILD_DIR/app/tally-dashboard
DEMO=resources/dashboards/demo.json
HTTP=127.0.0.1:7071
PNG=${TALLY_DEMO_PNG:-./tally-dashboard.png}

for bin in "$COLLECTOR" "$EMITTER" "$DASHBOARD"; do
  if [ ! -x "$bin" ]; then
    echo "run-demo: $bin is missing; build first (make build)" >&2
    exit 1
  fi
done

pids=()
# Stops one child: SIGTERM, up to 10 s to finish, then SIGKILL.
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  # A second Ctrl-C (or SIGTERM) while stopping must not leave the others running.
  trap '' INT TERM
  trap - EXIT
  # Newest first: emitters flush to a collector that is still there, then the collector stops.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${pids[$i]}"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if curl -fsS "http://$HTTP/healthz" >/dev/null 2>&1; then
  echo "run-demo: something already answers on $HTTP; stop it first (another make run?)" >&2
  exit 1
fi

mkdir -p data
"$COLLECTOR" --data-dir ./data --log-file ./data/collector.log &
pids+=($!)
collector_pid=$!

echo "run-demo: waiting for the collector on http://$HTTP ..."
for _ in $(seq 1 150); do
  if curl -fsS "http://$HTTP/healthz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$collector_pid" 2>/dev/null; then
    echo "run-demo: the collector exited; see ./data/collector.log" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "http://$HTTP/healthz" >/dev/null || { echo "run-demo: the collector did not get healthy" >&2; exit 1; }
echo "run-demo: collector up (data in ./data, log in ./data/collector.log)"

"$EMITTER" --rate-scale 1 >/dev/null &
pids+=($!)
"$EMITTER" --rate-scale 0.5 >/dev/null &
pids+=($!)
echo "run-demo: two demo emitters running"

if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  echo "run-demo: opening the dashboard; close its window to stop everything"
  "$DASHBOARD" --collector "http://$HTTP" --live tcp://127.0.0.1:7072 --dashboard "$DEMO" || true
  exit 0
fi

echo "run-demo: no display; collecting ~15 s of data for a dashboard image ..."
sleep 15
if QT_QPA_PLATFORM=offscreen "$DASHBOARD" --collector "http://$HTTP" --dashboard "$DEMO" --range 5m \
     --export-png "$PNG" --size 1600x1400 >/dev/null; then
  echo "run-demo: dashboard image written to $(realpath "$PNG")"
else
  echo "run-demo: the dashboard export failed (exit $?)" >&2
fi
echo "run-demo: collector and emitters keep running; HTTP API on http://$HTTP. Ctrl-C to stop."
wait "$collector_pid"
