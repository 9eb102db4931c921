#!/usr/bin/env bash
# The second quick-start command: installs what is missing, builds with
# AddressSanitizer + UndefinedBehaviorSanitizer, runs every test, then runs
# each benchmark in smoke mode (proves they run; asserts nothing about speed),
# clang-tidy on the core, adapters and plugins, and each fuzz target for 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export BUILD_DIR=${BUILD_DIR:-build-asan}
KPIHUB_SANITIZE=ON ./scripts/build.sh
# LeakSanitizer included: a leak fails the test that made it (the whole suite
# ran clean with it on 2026-11-23).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# setup.sh installed promtool: the Prometheus checks must run here, not be skipped.
export KPIHUB_REQUIRE_PROMTOOL=1
ctest --test-dir "$BUILD_DIR" -j2 --output-on-failure --timeout 600
./scripts/bench-smoke.sh "$BUILD_DIR"
# clang-tidy on the core, adapters and plugins (checks in .clang-tidy): any finding fails.
./scripts/lint.sh "$BUILD_DIR"
# Each libFuzzer target for a short while (clang build in build-fuzz/).
FUZZ_SECONDS=${FUZZ_SECONDS:-20} ./scripts/fuzz.sh
