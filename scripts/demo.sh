#!/usr/bin/env bash
# The first quick-start command: installs what is missing, builds, starts the
# bundled simulators on loopback (E-Office and the provincial receiver), drops
# a month of school teaching logs and hospital exports into the sector inboxes
# (var/inbox/), and runs the hub once on config/hub.json with its RocksDB store
# under var/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD_DIR=build ./scripts/build.sh

MONTH=${KPIHUB_DEMO_MONTH:-$(date -d "$(date +%Y-%m-01) -1 month" +%Y-%m)}
mkdir -p var
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Starts a simulator in the background and waits for its "listening" line.
start_sim() {
  local name=$1; shift
  local log=var/$name.log
  "$@" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    grep -q "listening on" "$log" && { echo "demo: $(grep -m1 'listening on' "$log")"; return 0; }
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "demo: $name did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}

start_sim sim-eoffice build/bin/kpihub-sim-eoffice --port 18081 --seed 42 --agencies 3 --staff 60 --days 20 \
  --month "$MONTH" --client-id kpihub --client-secret-file tests/fixtures/secrets/eoffice-client-secret
start_sim sim-province build/bin/kpihub-sim-province --port 18082 --db var/province.db \
  --client-id kpihub --client-secret-file tests/fixtures/secrets/province-client-secret

# The school and hospital systems' exports for the same month (the staff and
# unit files they match are config/staff-education.csv, config/staff-health.csv, ...).
rm -rf var/sector && mkdir -p var/inbox/education var/inbox/health
build/bin/kpihub-sim-education --out var/sector/education --schools 3 --teachers 10 --days 20 --month "$MONTH"
build/bin/kpihub-sim-health --out var/sector/health --hospitals 2 --clinicians 10 --days 20 --episodes 4 --month "$MONTH"
for s in education health; do
  for f in var/sector/$s/inbox/*.xml; do mv "$f" var/inbox/$s/; done   # renamed in, as the systems do
done

echo "demo: kpihub run --once (month $MONTH: E-Office, teaching logs and hospital exports to the provincial receiver)"
build/bin/kpihub run --once --config config/hub.json 2>var/hub.log || { tail -20 var/hub.log; exit 1; }
echo "demo: hub log in var/hub.log; store in var/hub.rocksdb"
build/bin/kpihub report --month "$MONTH" --config config/hub.json | head -40
echo "demo: more: build/bin/kpihub explain --staff KH-000001 --month $MONTH (a teacher: GD-000001, a doctor: YT-000001);"
echo "      build/bin/kpihub status; build/bin/kpihub run (long-running, dashboard on http://127.0.0.1:8080/)"
