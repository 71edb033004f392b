#!/usr/bin/env bash
# StatsD side by side: Tally's listener and Netdata's StatsD plugin on the same load ladder.
#
#   tests/bench/statsd_bench.sh [--quick] [--rates "250000 500000 1000000"] [--seconds 5]
#                               [--threads 1] [--series 1000] [--no-netdata]
#
# For each receiver in turn, for each rate of the ladder: statsd_loadgen sends counter lines (20
# tagged lines a packet, value 1, S series) to the receiver on loopback for the given seconds;
# the script then reads
#   - sent:    what the generator sent (exact);
#   - counted: the receiver's own count of lines it took (Tally: tally_statsd_lines_total on
#              /metrics; Netdata: the sum of its netdata.statsd_events chart over the run);
#   - dropped: kernel UDP receive drops during the step (/proc/net/snmp Udp RcvbufErrors +
#              InErrors, host-wide, so other UDP traffic on the machine would show here too);
#   - CPU:     the receiver's user+system CPU seconds during the step (/proc/PID/stat), per
#              million lines counted.
# A step is "lossless" when counted = sent and dropped = 0 (for Netdata, whose chart stores
# per-second rates, counted within 0.01 % of sent and dropped = 0); the answer per receiver is the
# highest lossless rate of the ladder. The machine is shared: compare the two receivers within
# one run (ratios), not across runs.
#
# Netdata (Debian package `netdata`, 1.37 on Debian 12) is installed on demand with apt-get the
# first time this script runs without --no-netdata; it is not a build or test dependency, so
# installer/install-deps.sh does not name it. It runs as a private instance (its own config,
# ports and directories under a temp dir, only the statsd plugin enabled); the system service
# is not touched.
#
# --quick (what `make bench` and CI run): one 1-second step at 20,000 lines/s against Tally
# only; it checks that the harness works, never timings.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${BUILD_DIR:-build}"
case "$build" in /*) ;; *) build="$root/$build" ;; esac

quick=0
rates="250000 500000 1000000 1500000 2000000"
seconds=5
threads=1
series=1000
with_netdata=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rates) rates="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --threads) threads="$2"; shift ;;
    --series) series="$2"; shift ;;
    --no-netdata) with_netdata=0 ;;
    *) echo "statsd_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$quick" -eq 1 ]; then
  rates="20000"; seconds=1; with_netdata=0
fi

loadgen="$build/tests/bench/statsd_loadgen"
collector="${TALLY_COLLECTOR:-$build/collector/tally-collector}"  # override to compare builds
fsync="${TALLY_FSYNC:-never}"  # the collector's fsync policy (always, never, or an interval)
for b in "$loadgen" "$collector"; do
  [ -x "$b" ] || { echo "statsd_bench.sh: $b is missing; build first" >&2; exit 1; }
done

work="$(mktemp -d /tmp/tally-statsd-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {  # a loopback port nobody listens on (tcp or udp), for Netdata's private instance
  local p
  for _ in $(seq 50); do
    p=$(shuf -i 20000-60999 -n 1)
    if ! ss -Hln"${1:0:1}" "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return; fi
  done
  echo "statsd_bench.sh: no free $1 port found" >&2; return 1
}

udp_drops() {  # RcvbufErrors + InErrors from the Udp line of /proc/net/snmp
  awk '/^Udp:/ { if (!hdr) { for (i = 2; i <= NF; i++) col[$i] = i; hdr = 1 } else { print $col["InErrors"] + $col["RcvbufErrors"] } }' /proc/net/snmp
}

cpu_ticks() {  # utime + stime of a process, in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}
hz="$(getconf CLK_TCK)"

wait_for() {  # wait_for SECONDS COMMAND...: poll until COMMAND succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# --- receivers -------------------------------------------------------------------------------
# Each receiver defines start_X (sets RX_PID, RX_PORT), counted_X (prints lines counted since
# start), stop_X.

start_tally() {
  mkdir -p "$work/tally"
  # Port 0 everywhere: the collector picks free ports and writes them to its ready file.
  "$collector" --data-dir "$work/tally/data" --ingest "tcp://127.0.0.1:*" \
    --http "127.0.0.1:0" --live off --statsd "127.0.0.1:0" --fsync "$fsync" \
    --no-self-metrics --log-level warn --log-file "$work/tally/log" \
    --ready-file "$work/tally/ready.json" &
  RX_PID=$!; pids+=("$RX_PID")
  wait_for 20 test -s "$work/tally/ready.json" || { echo "tally did not start" >&2; cat "$work/tally/log" >&2; exit 1; }
  RX_PORT="$(sed -n 's/.*"statsd_port":\([0-9]*\).*/\1/p' "$work/tally/ready.json")"
  TALLY_HTTP="$(sed -n 's/.*"http_port":\([0-9]*\).*/\1/p' "$work/tally/ready.json")"
}
counted_tally() {
  curl -sf "http://127.0.0.1:$TALLY_HTTP/metrics" | awk '$1 == "tally_statsd_lines_total" { printf "%d\n", $2 }'
}
# What Tally stored, read back through its query API: every line it counted during the ladder,
# in exactly `series` distinct series (the tags kept). Prints STORED ...; stored_ok=0 when the
# store holds other than what was counted (or, with --quick, other than what was sent).
stored_ok=1
stored_tally() {
  local from="$1" sent="$2" counted="$3" to total=0 nseries=0 m body t n
  sleep 3  # the last second becomes final and is logged
  to=$(( $(date +%s) + 1 ))
  for m in 0 1 2 3 4 5 6 7 8 9; do
    body="$(curl -sf "http://127.0.0.1:$TALLY_HTTP/api/query?metric=bench.statsd.m$m&from=$from&to=$to&step=$((to - from))&group_by=host,series")" || continue
    # {"series":[{"tags":{...},"points":[[t,v],...]},...]}: sum every v, count the series.
    t="$(grep -o '\[[0-9]*,[-0-9.e+]*\]' <<<"$body" | awk -F'[],[]' '{ s += $3 } END { printf "%d", s }')"
    n="$(grep -o '"tags":' <<<"$body" | wc -l)"
    total=$((total + t)); nseries=$((nseries + n))
  done
  local exact=yes
  [ "$total" -eq "$counted" ] && [ "$nseries" -eq "$series" ] || exact=no
  [ "$quick" -eq 1 ] && [ "$total" -ne "$sent" ] && exact=no
  [ "$exact" = yes ] || stored_ok=0
  printf '%-8s STORED lines_sent=%s lines_counted=%s stored_total=%s series=%s of %s exact=%s\n' tally "$sent" "$counted" "$total" "$nseries" "$series" "$exact"
}
stop_tally() { kill "$RX_PID"; wait "$RX_PID" 2>/dev/null || true; }

ensure_netdata() {
  if ! [ -x /usr/sbin/netdata ]; then
    echo "# installing Debian's netdata (apt-get) for the side-by-side run" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends netdata >&2
    # The package starts its system service; this benchmark runs its own private instance.
    systemctl stop netdata 2>/dev/null || true
  fi
}
start_netdata() {
  local web udp d="$work/netdata"
  web="$(free_port tcp)"; udp="$(free_port udp)"
  mkdir -p "$d/cache" "$d/lib" "$d/log" "$d/run"
  # Only the statsd plugin; metrics kept in memory; no private charts per metric (Netdata's
  # default aggregates in its statsd thread either way), 1 s updates.
  cat >"$d/netdata.conf" <<EOF
[global]
    run as user = root
    memory mode = ram
    update every = 1
[directories]
    cache = $d/cache
    lib = $d/lib
    log = $d/log
    run = $d/run
[logs]
    debug log = none
    error log = $d/log/error.log
    access log = none
[web]
    bind to = 127.0.0.1:$web
[ml]
    enabled = no
[health]
    enabled = no
[plugins]
    proc = no
    diskspace = no
    cgroups = no
    tc = no
    idlejitter = no
    checks = no
    apps = no
    python.d = no
    charts.d = no
    go.d = no
    node.d = no
    ebpf = no
    timex = no
    slabinfo = no
    perf = no
    fping = no
    ioping = no
    debugfs = no
    nfacct = no
    freeipmi = no
    statsd = yes
[statsd]
    enabled = yes
    update every (flushInterval) = 1
    bind to = udp:127.0.0.1:$udp
    default port = $udp
EOF
  /usr/sbin/netdata -D -c "$d/netdata.conf" -P "$d/run/netdata.pid" >"$d/log/stdout.log" 2>&1 &
  RX_PID=$!; pids+=("$RX_PID")
  RX_PORT="$udp"; NETDATA_WEB="$web"
  wait_for 120 curl -sf "http://127.0.0.1:$web/api/v1/info" || { echo "netdata did not start" >&2; tail -20 "$d/log/error.log" >&2 || true; return 1; }
  # Its statsd charts appear once the first metric arrived.
  "$loadgen" --port "$udp" --rate 1000 --seconds 0.1 --series 10 >/dev/null
  wait_for 60 curl -sf "http://127.0.0.1:$web/api/v1/data?chart=netdata.statsd_events&points=1" || { echo "netdata has no statsd_events chart" >&2; return 1; }
}
counted_netdata() {
  # Sum of the per-second "counters" events since the instance started (1 s resolution, memory
  # mode ram keeps the last hour).
  curl -sf "http://127.0.0.1:$NETDATA_WEB/api/v1/data?chart=netdata.statsd_events&dimensions=counters&after=-3600&format=csv&options=nonzero,abs" |
    awk -F, 'NR > 1 { s += $2 } END { printf "%d\n", s }'
}
stop_netdata() { kill "$RX_PID"; wait "$RX_PID" 2>/dev/null || true; }

# --- the ladder ------------------------------------------------------------------------------
run_receiver() {
  local name="$1" best=0 best_cpu=""
  "start_$name" || { echo "$name: could not start; skipped"; return 0; }
  local settle=2  # Tally publishes its counters on the ingest thread's once-a-second tick
  [ "$name" = netdata ] && settle=3  # its chart lags by up to its update interval
  local total_sent=0 total_counted=0 from
  from="$(date +%s)"
  for rate in $rates; do
    local c0 d0 t0 out sent c1 d1 t1 counted dropped cpu_s per_m lossless
    c0="$("counted_$name")"; d0="$(udp_drops)"; t0="$(cpu_ticks "$RX_PID")"
    out="$("$loadgen" --port "$RX_PORT" --threads "$threads" --rate "$rate" --seconds "$seconds" --series "$series")"
    sent="$(sed -n 's/.*lines_sent=\([0-9]*\).*/\1/p' <<<"$out")"
    total_sent=$((total_sent + sent))
    # Let the receiver drain its socket buffer and update its counters.
    sleep "$settle"
    c1="$("counted_$name")"; d1="$(udp_drops)"; t1="$(cpu_ticks "$RX_PID")"
    counted=$((c1 - c0)); dropped=$((d1 - d0))
    total_counted=$((total_counted + counted))
    cpu_s="$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    per_m="$(awk -v c="$cpu_s" -v n="$counted" 'BEGIN { if (n > 0) printf "%.3f", c / (n / 1e6); else print "-" }')"
    lossless=no
    if [ "$dropped" -eq 0 ]; then
      if [ "$counted" -eq "$sent" ]; then
        lossless=yes
      elif [ "$name" = netdata ] && [ $(( (sent - counted) * 10000 )) -le "$sent" ] && [ $(( (counted - sent) * 10000 )) -le "$sent" ]; then
        lossless=yes  # Netdata's chart holds per-second rates: its sum is exact only to rounding
      fi
    fi
    printf '%-8s rate=%-8s sent=%-9s counted=%-9s kernel_drops=%-7s cpu_s=%-6s cpu_s_per_M=%-7s lossless=%s\n' \
      "$name" "$rate" "$sent" "$counted" "$dropped" "$cpu_s" "$per_m" "$lossless"
    if [ "$lossless" = yes ]; then best="$rate"; best_cpu="$per_m"; fi
  done
  if [ "$name" = tally ]; then stored_tally "$from" "$total_sent" "$total_counted"; fi
  "stop_$name"
  printf '%-8s RESULT lossless_lines_per_s=%s cpu_s_per_M_lines_at_that_rate=%s\n' "$name" "$best" "${best_cpu:--}"
}

echo "StatsD benchmark: $(nproc) cores, $(uname -srm), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load: $threads sender thread(s), 20 tagged counter lines a packet, $series series, ${seconds}s a step, rates: $rates"
run_receiver tally
if [ "$with_netdata" -eq 1 ]; then
  ensure_netdata
  run_receiver netdata
fi
exit $(( 1 - stored_ok ))
