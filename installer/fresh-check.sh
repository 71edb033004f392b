#!/usr/bin/env bash
# The fresh-machine check: builds a minimal Debian 12 root with mmdebstrap, puts a clean clone of
# this repository's HEAD in it, and runs the README's two commands there as a new user would:
# `make test`, then the headless `make run` until it has written its dashboard PNG. A package the
# build or the tests need but install-deps.sh does not name fails here, not on a user's machine.
#
#   installer/fresh-check.sh [WORKDIR]     (root; WORKDIR defaults to a new dir under /var/tmp)
#   FRESH_REV=65b6d54 installer/fresh-check.sh   (the same check on an older commit)
#
# Keep WORKDIR to look around afterwards (chroot WORKDIR/root bash). Not part of `make test`: it
# takes 20-30 minutes on 2 cores and needs Debian's package mirror. Before deleting a WORKDIR whose
# run was killed, check `grep WORKDIR /proc/mounts` is empty: a left bind mount of /dev makes
# `rm -rf` delete the host's device nodes (a new run of this script unmounts them first).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "fresh-check: needs root (mmdebstrap and chroot)" >&2
  exit 2
fi
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=${1:-$(mktemp -d /var/tmp/tally-fresh.XXXXXX)}
root=$work/root
log=$work/fresh-check.log
mkdir -p "$work"
: >"$log"

say() { echo "fresh-check: $*" | tee -a "$log" >&2; }
fail() {
  say "FAILED: $*"
  say "log: $log; the root stays in $root (chroot $root bash)"
  exit 1
}

if ! command -v mmdebstrap >/dev/null; then
  apt-get install -y -qq mmdebstrap >/dev/null
fi

# A run stopped by SIGKILL (no EXIT trap) leaves its bind mounts of /proc, /sys and /dev in the
# root: take them down first, so that neither this run nor an `rm -rf` of WORKDIR reaches the
# host's /dev through them.
awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mp; do
  umount -l "$mp" 2>/dev/null || true
done

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

# A user who cloned the repository has git and typed make: those two, nothing else.
if [ ! -x "$root/usr/bin/make" ]; then
  say "creating a minimal Debian 12 root in $root"
  mmdebstrap --variant=minbase --include=make,git,ca-certificates bookworm "$root" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >>"$log" 2>&1 ||
    fail "mmdebstrap"
fi

for m in proc sys dev dev/pts dev/shm; do
  mkdir -p "$root/$m"
  mount --bind "/$m" "$root/$m"
  mounted+=("$root/$m")
done
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

rev=${FRESH_REV:-HEAD}   # FRESH_REV=<commit> checks an older commit the same way
rm -rf "$root/src"
say "cloning $(git -C "$src" rev-parse --short "$rev") into the root"
git clone -q "$src" "$root/src" || fail "git clone"
git -C "$root/src" checkout -q "$(git -C "$src" rev-parse "$rev")" || fail "git checkout $rev"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 TERM=dumb bash -c "$1"; }

say "make test (README) ..."
start=$(date +%s)
if ! in_root 'cd /src && make test' >>"$log" 2>&1; then
  tail -n 40 "$log" >&2
  fail "make test"
fi
say "make test passed in $(($(date +%s) - start)) s"

say "make run, headless, until the dashboard PNG is written ..."
in_root 'cd /src && rm -f /src/tally-dashboard.png
  # Its own process group, so stopping it stops the collector and emitters and nothing else.
  (unset DISPLAY WAYLAND_DISPLAY; exec setsid timeout 180 make run) >/src/run.log 2>&1 &
  pid=$!
  for i in $(seq 1 170); do [ -s /src/tally-dashboard.png ] && break; sleep 1; done
  sleep 1; kill -INT -- -$pid 2>/dev/null || true; sleep 5; kill -KILL -- -$pid 2>/dev/null || true
  cat /src/run.log; test -s /src/tally-dashboard.png' >>"$log" 2>&1 || fail "make run wrote no PNG"
cp "$root/src/tally-dashboard.png" "$work/tally-dashboard.png"
say "make run wrote $work/tally-dashboard.png"
say "PASSED (log: $log)"
