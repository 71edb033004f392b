#!/usr/bin/env bash
# The upgrade check: `apt upgrade` from Tally 0.1.0's packages to this tree's, with the real .debs,
# in a Debian 12 root booted with systemd (systemd-nspawn), as an administrator would meet it:
#
#   1. install tally-collector 0.1.0 (commit 65b6d54, built here) with apt; the service starts;
#   2. edit /etc/tally/collector.toml (a conffile), restart, send counts with 0.1.0's `tally emit`
#      and StatsD, and read the totals;
#   3. `apt-get install` this tree's tally-collector .deb over it (non-interactive, keeping the
#      edited config: --force-confold, what `apt upgrade` asks about interactively);
#   4. check: the config keeps the edit and is 0640 root:tally, the service was restarted by the
#      package (a new main PID) and is active, the collector's journal shows it opened the old
#      data directory, the totals are the same, and new counts add to them exactly.
#
#   installer/upgrade-check.sh [WORKDIR]   (root; needs Debian's package mirror, systemd-container,
#                                           mmdebstrap; builds 0.1.0 and packages BUILD_DIR)
# Not part of `make test` (10-20 minutes on 2 cores). BUILD_DIR (default build) must be built.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "upgrade-check: needs root (mmdebstrap, systemd-nspawn)" >&2
  exit 2
fi
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
build=$(cd "$src/${BUILD_DIR:-build}" && pwd)
work=${1:-$(mktemp -d /var/tmp/tally-upgrade.XXXXXX)}
root=$work/root
log=$work/upgrade-check.log
old_commit=65b6d54
mkdir -p "$work"
: >"$log"

say() { echo "upgrade-check: $*" | tee -a "$log" >&2; }
fail() {
  say "FAILED: $*"
  say "log: $log; the root stays in $root"
  exit 1
}
for p in mmdebstrap systemd-nspawn:systemd-container dpkg-shlibdeps:dpkg-dev; do
  command -v "${p%%:*}" >/dev/null || apt-get install -y -qq "${p##*:}" >/dev/null
done

# --- the packages ------------------------------------------------------------------------------
old=$build/compat-0.1.0   # shared with tests/compat/wire_compat.sh
if ! ls "$work"/old-debs/tally-collector_*.deb >/dev/null 2>&1; then
  say "building Tally 0.1.0 ($old_commit) and its packages"
  if [ ! -f "$old/build/build.ninja" ]; then
    rm -rf "$old"
    mkdir -p "$old/src"
    git -C "$src" archive "$old_commit" | tar -x -C "$old/src"
    cmake -S "$old/src" -B "$old/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DTALLY_BUILD_APP=OFF -DTALLY_BUILD_TESTS=OFF -DTALLY_BUILD_BENCH=OFF >>"$log" 2>&1 ||
      fail "configure 0.1.0"
  fi
  cmake --build "$old/build" -j "${JOBS:-2}" >>"$log" 2>&1 || fail "build 0.1.0"
  mkdir -p "$work/old-debs"
  (cd "$old/build" && cpack -G DEB -B "$work/old-debs") >>"$log" 2>&1 || fail "package 0.1.0"
fi
say "packaging this tree ($(git -C "$src" rev-parse --short HEAD)) from $build"
rm -rf "$work/new-debs"
mkdir -p "$work/new-debs"
(cd "$build" && cpack -G DEB -B "$work/new-debs") >>"$log" 2>&1 || fail "package this tree"
old_deb=$(ls "$work"/old-debs/tally-collector_*.deb | head -1)
new_deb=$(ls "$work"/new-debs/tally-collector_*.deb | head -1)
say "from $(basename "$old_deb") to $(basename "$new_deb")"
dpkg --compare-versions "$(dpkg-deb -f "$new_deb" Version)" gt "$(dpkg-deb -f "$old_deb" Version)" ||
  fail "the new package's version is not above the old one's: apt would not upgrade"

# --- a Debian 12 root that boots systemd ----------------------------------------------------------
if [ ! -x "$root/lib/systemd/systemd" ]; then
  say "creating a Debian 12 root with systemd in $root"
  mmdebstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser,curl,ca-certificates \
    bookworm "$root" "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >>"$log" 2>&1 ||
    fail "mmdebstrap"
fi
rm -rf "$root/debs"
mkdir -p "$root/debs"
cp "$old_deb" "$root/debs/old.deb"
cp "$new_deb" "$root/debs/new.deb"

systemd-nspawn -q -D "$root" --boot --register=no --keep-unit >"$work/nspawn.log" 2>&1 &
nspawn=$!
stop_root() {
  kill "$nspawn" 2>/dev/null || true
  wait "$nspawn" 2>/dev/null || true
}
trap stop_root EXIT
leader=
for _ in $(seq 100); do
  leader=$(pgrep -P "$nspawn" 2>/dev/null | head -1 || true)
  [ -n "$leader" ] && in_root() { nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 bash -c "$1"; } && in_root 'systemctl is-system-running --wait >/dev/null 2>&1 ||
      [ "$(systemctl is-system-running)" = degraded ]' && break
  sleep 0.5
done
[ -n "$leader" ] || fail "the root did not boot (see $work/nspawn.log)"
say "the root booted systemd (leader pid $leader)"

run() {  # run STEP SCRIPT: the script's output goes to the log; fails the check on error
  say "$1"
  in_root "set -euo pipefail; $2" >>"$log" 2>&1 || fail "$1"
}
# total METRIC: the sum over the last day at 1 h steps, from the installed CLI
total_cmd='total() { tally --format csv query "$1" --from -1d --to now --step 1h | awk -F, "NR > 1 && \$NF != \"\" { s += \$NF } END { printf \"%.0f\\n\", s }"; }'
wait_active='for i in $(seq 150); do curl -sf http://127.0.0.1:7071/healthz >/dev/null && break; sleep 0.2; done; curl -sf http://127.0.0.1:7071/healthz >/dev/null'

# 0.1.0's unit forbids netlink sockets, and ZeroMQ aborts the collector without them (the
# journal: "Address family not supported by protocol (src/ip_resolver.cpp:542)"): an operator of
# 0.1.0 had to allow them in a drop-in. It is removed before the upgrade, so the new package's
# unit has to start the collector on its own.
run "apt-get install tally-collector 0.1.0 (with the drop-in its unit needs)" \
  "export DEBIAN_FRONTEND=noninteractive; dpkg --purge tally-collector >/dev/null 2>&1 || true
   rm -rf /var/lib/tally /etc/tally /etc/systemd/system/tally-collector.service.d
   apt-get update -qq; apt-get install -y -qq /debs/old.deb
   mkdir -p /etc/systemd/system/tally-collector.service.d
   printf '[Service]\\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\\n' \
     > /etc/systemd/system/tally-collector.service.d/netlink.conf
   systemctl daemon-reload; systemctl restart tally-collector
   $wait_active; systemctl is-active tally-collector; tally-collector --help | head -1"
run "edit the config (lateness 3s, an operator's comment) and restart" \
  "sed -i 's/^lateness = .*/lateness = \"3s\"  # operator: edited before the upgrade/' /etc/tally/collector.toml
   grep -q 'operator: edited' /etc/tally/collector.toml; systemctl restart tally-collector; $wait_active"
run "send counts with 0.1.0's tally emit and StatsD" \
  "for v in 1 2 3 4 5; do tally emit upgrade.hits \$v --tag k=a; done
   tally emit upgrade.latency 10 --kind distribution; tally emit upgrade.latency 30 --kind distribution
   printf 'upgrade.statsd:7|c\nupgrade.statsd:8|c\n' > /dev/udp/127.0.0.1/8125; sleep 5
   $total_cmd
   test \"\$(total upgrade.hits)\" = 15; test \"\$(total upgrade.statsd)\" = 15
   systemctl show -p MainPID --value tally-collector > /tmp/pid.before
   rm -r /etc/systemd/system/tally-collector.service.d; systemctl daemon-reload"
run "apt-get install this tree's tally-collector over it (keeping the edited config)" \
  "export DEBIAN_FRONTEND=noninteractive; date '+%Y-%m-%d %H:%M:%S' > /tmp/upgrade.since
   apt-get install -y -qq -o Dpkg::Options::=--force-confold /debs/new.deb; $wait_active
   tally-collector --version; tally --version"
run "the package restarted the service and kept the config" \
  "$wait_active; systemctl is-active tally-collector
   before=\$(cat /tmp/pid.before); after=\$(systemctl show -p MainPID --value tally-collector)
   echo \"main pid \$before -> \$after\"; test \"\$before\" != \"\$after\"
   grep -q 'operator: edited before the upgrade' /etc/tally/collector.toml
   stat -c '%a %U %G' /etc/tally/collector.toml; test \"\$(stat -c '%a %U %G' /etc/tally/collector.toml)\" = '640 root tally'
   systemctl show -p Environment -p MemoryMax -p TasksMax tally-collector"
run "the collector opened the 0.1.0 data directory (journal)" \
  "journal() { journalctl -u tally-collector --since \"\$(cat /tmp/upgrade.since)\" --no-pager -o cat; }
   journal | tail -n 40; journal | grep -E 'event=opened .*created=false'"
run "the totals are the same, and new counts add to them exactly" \
  "$total_cmd
   test \"\$(total upgrade.hits)\" = 15; test \"\$(total upgrade.statsd)\" = 15
   test \"\$(tally --format csv query upgrade.latency --from -1d --to now --step 1h --fn count | awk -F, 'NR > 1 && \$NF != \"\" { s += \$NF } END { print s }')\" = 2
   tally emit upgrade.hits 100 --tag k=b; printf 'upgrade.statsd:5|c\n' > /dev/udp/127.0.0.1/8125; sleep 3
   test \"\$(total upgrade.hits)\" = 115; test \"\$(total upgrade.statsd)\" = 20"
say "PASSED (log: $log)"
