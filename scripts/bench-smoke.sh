#!/usr/bin/env bash
# Runs every Google Benchmark binary briefly, bench/engines on a few thousand
# records, then bench/peers --smoke (the hub, syslog-ng and each simulator alone
# on a few hundred records): CI proves they still run.
# Real figures come from bench/run and bench/peers (docs/performance.md), not from here.
set -euo pipefail
BUILD_DIR=${1:-build}
shopt -s nullglob
ran=0
for b in "$BUILD_DIR"/bin/bench_*; do
  echo "bench smoke: $(basename "$b")"
  "$b" --benchmark_min_time=0.01 --benchmark_filter="${KPIHUB_BENCH_FILTER:-.}" >/dev/null
  ran=$((ran + 1))
done
echo "bench smoke: $ran benchmark binaries ran"
# The record-log workload of issue 20 on every storage engine, 4,400 records each
# (docs/architecture.md, "Storage engine for the record log"); it fails if an engine
# stores or reads back other records than the feed.
echo "bench smoke: kpihub-bench-engines --smoke"
"$BUILD_DIR/bin/kpihub-bench-engines" --smoke \
  --engines sqlite,sqlite-normal,sqlite-text,rocksdb,rocksdb-idkey,rocksdb-nobloom,rocksdb-raw,rocksdb-clustered,lmdb \
  >/dev/null
# bench/peers on a few hundred records: the hub, syslog-ng (installed by
# setup.sh: missing, this fails) and each simulator alone, end to end.
echo "bench smoke: bench/peers --smoke"
BUILD_DIR="$BUILD_DIR" OUT="${KPIHUB_BENCH_OUT:-var/bench-smoke}" "$(dirname "$0")/../bench/peers" --smoke >/dev/null
echo "bench smoke: bench/peers ran"
# A hospital export through the whole hub (the 200 and 500 MB runs of docs/performance.md are
# the same script with --mb 200 / 500; minutes each, not for CI): 2 MB proves it runs.
"$(dirname "$0")/../bench/sector/export-rss.sh" --build "$BUILD_DIR" --mb 2
