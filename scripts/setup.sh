#!/usr/bin/env bash
# Installs the Debian 12 packages kpihub needs, only those that are missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git openssl ca-certificates curl
  libboost1.81-all-dev libboost-json1.81-dev
  libpoco-dev libxml2-dev libssl-dev libsqlite3-dev
  # the receiver simulator's JSON path (tests/sim/province)
  libsimdjson-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang
  # bench/engines: the record log on RocksDB and LMDB beside SQLite (issue 20)
  librocksdb-dev liblmdb-dev
  chromium fonts-dejavu-core
  # promtool: the /metrics page, scrape config and alert rules are checked with it
  # (tests/integration/prometheus). Debian ships it only with the server.
  prometheus
)
# The peer of bench/peers (and of its smoke run in scripts/bench-smoke.sh):
# syslog-ng with its reliable disk buffer and http() destination. bench/peers
# runs it as a foreground process of its own. Debian's syslog-ng-core is also a
# system logger and conflicts with any other (rsyslog): it is installed only
# where it replaces nothing (containers, CI), never in place of this machine's
# logger.
PEER_PACKAGES=(syslog-ng-core syslog-ng-mod-http)

missing_of() {  # packages... -> those not installed
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      echo "$p"
    fi
  done
}
mapfile -t missing < <(missing_of "${PACKAGES[@]}")
mapfile -t peer_missing < <(missing_of "${PEER_PACKAGES[@]}")

if [ ${#missing[@]} -eq 0 ] && [ ${#peer_missing[@]} -eq 0 ]; then
  echo "setup: all $((${#PACKAGES[@]} + ${#PEER_PACKAGES[@]})) packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup: need root (or sudo) to install: ${missing[*]} ${peer_missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ${#peer_missing[@]} -gt 0 ]; then
  removed=$(apt-get -s install --no-install-recommends "${peer_missing[@]}" 2>/dev/null |
    sed -n 's/^Remv \([^ ]*\).*/\1/p' | tr '\n' ' ')
  if [ -n "$removed" ]; then
    echo "setup: NOT installing ${peer_missing[*]} (for bench/peers only): it would remove" \
      "${removed}(this machine's system logger). bench/peers fails without it; install it" \
      "yourself if replacing the logger is fine: apt-get install ${peer_missing[*]}" >&2
  else
    echo "setup: installing ${peer_missing[*]} (the peer of bench/peers)"
    $SUDO apt-get install -y -qq --no-install-recommends "${peer_missing[@]}"
  fi
fi
