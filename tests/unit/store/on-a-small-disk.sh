#!/usr/bin/env bash
# Runs the store tests that need a disk that fills up (KPIHUB_SMALL_DISK_DIR) on a 24 MiB tmpfs
# mounted in a mount namespace of their own, so nothing else sees it. Exit 77 (skipped) where
# this machine does not let the test make one (no unshare, no privilege).
#   on-a-small-disk.sh STORE_TEST_BINARY GTEST_FILTER
set -euo pipefail
binary=$1 filter=$2
command -v unshare >/dev/null || { echo "on-a-small-disk: no unshare: skipped"; exit 77; }
unshare -m true 2>/dev/null || { echo "on-a-small-disk: cannot make a mount namespace: skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rmdir "$dir" 2>/dev/null || true' EXIT
exec unshare -m sh -c '
  mount -t tmpfs -o size=24m tmpfs "$1" || { echo "on-a-small-disk: cannot mount a tmpfs: skipped"; exit 77; }
  KPIHUB_SMALL_DISK_DIR="$1" "$2" --gtest_filter="$3"
' sh "$dir" "$binary" "$filter"
