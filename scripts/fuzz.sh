#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (tests/fuzz/*) and runs each for
# FUZZ_SECONDS (default 20) on a copy of its corpus. A crash fails the script
# and leaves the crashing input in $FUZZ_DIR/<target>/ to add to the corpus.
#   scripts/fuzz.sh                 # every target, 20 s each (CI)
#   FUZZ_SECONDS=600 scripts/fuzz.sh education_fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
FUZZ_DIR=${FUZZ_DIR:-$BUILD_DIR/runs}
SECONDS_EACH=${FUZZ_SECONDS:-20}
# Configured every time (quick), so new targets are found.
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKPIHUB_FUZZ=ON -DKPIHUB_BUILD_TESTS=ON -DKPIHUB_BUILD_BENCH=OFF >/dev/null
mapfile -t targets < <(ninja -C "$BUILD_DIR" -t targets all | sed -n 's/^\([a-z0-9_]*_fuzz\): phony$/\1/p' |
  grep -v '^cmake_' | sort -u)
if [[ $# -gt 0 ]]; then targets=("$@"); fi
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz: no fuzz targets"
  exit 0
fi
cmake --build "$BUILD_DIR" -j2 --target "${targets[@]}"
root=$(pwd)
for t in "${targets[@]}"; do
  corpus_src=$(cat "$BUILD_DIR/tests/fuzz/$t.corpus" 2>/dev/null || true)
  binary=$(find "$root/$BUILD_DIR" -name "$t" -type f -executable | head -1)
  work="$root/$FUZZ_DIR/$t"
  rm -rf "$work" && mkdir -p "$work/corpus"
  for d in $corpus_src; do cp -r "$d"/. "$work/corpus/" 2>/dev/null || true; done
  echo "fuzz: $t for ${SECONDS_EACH}s on $(find "$work/corpus" -type f | wc -l) corpus files"
  if ! (cd "$work" && "$binary" -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=1024 \
      -timeout=10 corpus >fuzz.log 2>&1); then
    echo "fuzz: $t FAILED; see $work/fuzz.log and the crash-* file there"
    tail -30 "$work/fuzz.log"
    exit 1
  fi
  grep -E '^#[0-9]+\s+DONE' "$work/fuzz.log" | tail -1 || true
done
echo "fuzz: ${#targets[@]} targets ran without a crash"
