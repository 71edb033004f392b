#!/usr/bin/env bash
# Installs the Debian 12 packages Tally needs to build, test and run. Idempotent: quiet when
# everything is present. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  clang-format      # make format / format-check keep the layout in .clang-format
  qt6-base-dev qt6-charts-dev qt6-svg-dev libgl-dev
  libqt6opengl6-dev  # Qt6Charts' CMake config needs Qt6OpenGL; --no-install-recommends leaves it out
  qtkeychain-qt6-dev  # the dashboard's secret header values in the OS keychain (QtKeychain)
  libzmq3-dev cppzmq-dev
  protobuf-compiler libprotobuf-dev
  libsqlite3-dev
  libcpp-httplib-dev nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libspdlog-dev
  libssl-dev openssl  # HTTPS: cpp-httplib's header includes OpenSSL's; tst_auth makes a test certificate
  libxxhash-dev libzstd-dev libsnappy-dev zlib1g-dev
  libre2-dev  # label matchers (=~, !~): RE2 regexes, Prometheus syntax, linear-time matching
  xvfb xauth curl
  x11-apps  # xwd: the dashboard screen test captures what the X server shows (tst_dashboard_screen)
  prometheus  # promtool checks /metrics; a real server scrapes the collector in tests
  victoria-metrics  # remote-write forwarding is tested against a real single-node server
  dpkg-dev file     # make package: dpkg-shlibdeps computes Depends of the .debs
  clang libfuzzer-14-dev  # make test-long: the libFuzzer harnesses (preset fuzz, tests/fuzz/run.sh)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "tally: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
