#!/usr/bin/env bash
# Installs the Debian 12 packages kpihub needs, only those that are missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git openssl ca-certificates curl
  libboost1.81-all-dev libboost-json1.81-dev
  libpoco-dev libxml2-dev libssl-dev libsqlite3-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang
  chromium fonts-dejavu-core
  # promtool: the /metrics page, scrape config and alert rules are checked with it
  # (tests/integration/prometheus). Debian ships it only with the server.
  prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
