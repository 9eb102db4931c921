#!/usr/bin/env bash
# One hospital export through the whole hub, end to end (`kpihub run --once`: pull, store,
# score, forward to a file sink), and the hub's peak RSS (issue 18: a 200 MB export peaked at
# 404 MB while scoring; it must stay under 100 MB whatever the size of the file).
#
#   bench/sector/export-rss.sh [--build DIR] [--mb 200] [--clinicians 2] [--max-rss-mb N]
#
# --clinicians 2 puts the credits of the whole file on few staff months (a lab clinician's
# month of a 500 MB export is ~290,000 credits): the case that grew. With --max-rss-mb the
# script fails when the peak is above it. The long runs (200 and 500 MB, minutes each) are
# not for CI; scripts/bench-smoke.sh runs a 2 MB one. Figures go to docs/performance.md. The
# peak RSS is the hub's own (its "resources:" line); under AddressSanitizer it means nothing.
set -euo pipefail
build=build mb=200 clinicians=2 max_rss_mb="" wrap=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    --mb) mb=$2; shift 2 ;;
    --clinicians) clinicians=$2; shift 2 ;;
    --max-rss-mb) max_rss_mb=$2; shift 2 ;;
    --wrap) wrap=$2; shift 2 ;;  # e.g. "heaptrack -o /tmp/hub": runs the hub under it
    *) echo "export-rss: unknown option $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$build/bin" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kpihub-export-rss.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The clinicians' staff and unit files (hospital 56101, as `large` writes it), then the export.
"$bin/kpihub-sim-health" --out "$work/gen" --hospitals 1 --clinicians "$clinicians" --days 1 \
  --episodes 1 --month 2025-04 >/dev/null
rm -f "$work/gen/inbox/"*
"$bin/kpihub-sim-health" large --out "$work/gen/inbox/56101-2025-04-28.xml" --mb "$mb" \
  --clinicians "$clinicians"

mkdir -p "$work/plugins"
for plugin in libkpihub-health.so libtest-file-sink.so; do
  found=$(find "$build" -name "$plugin" -not -path "$work/*" | head -1)
  [[ -n "$found" ]] || { echo "export-rss: $plugin not built in $build" >&2; exit 1; }
  cp "$found" "$work/plugins/"
done
config=$root/config
cat >"$work/hub.json" <<EOF
{
  "hub_id": "export-rss",
  "data_dir": "$work/var",
  "plugin_dir": "$work/plugins",
  "today": "2025-05-10",
  "log_level": "info",
  "catalog_files": ["$config/catalog/province.csv", "$config/catalog/health.csv"],
  "staff_file": ["$config/staff.csv", "$work/gen/staff.csv"],
  "units_file": ["$config/units.csv", "$work/gen/units.csv"],
  "rules_file": "$config/rules.json",
  "holiday_files": ["$config/holidays/2025.csv"],
  "sources": [{"name": "health", "plugin": "health", "settings": {"inbox_dir": "$work/gen/inbox",
    "state_file": "$work/var/health-state.db", "settle_ms": 0}}],
  "sinks": [{"name": "files", "plugin": "file-sink", "settings": {"file": "$work/delivered.tsv"}}]
}
EOF

# shellcheck disable=SC2086  # $wrap is a command and its arguments
$wrap "$bin/kpihub" run --once --config "$work/hub.json" >"$work/run.log" 2>&1 || {
  echo "export-rss: kpihub run --once failed:" >&2
  tail -20 "$work/run.log" >&2
  exit 1
}
# The hub's own figures: "resources: wall 117.02 s, cpu 60.11 s, peak RSS 74.9 MB".
resources=$(grep '^resources:' "$work/run.log")
items=$(wc -l <"$work/delivered.tsv")
echo "export-rss: $mb MB export, $clinicians clinicians: $items items delivered; ${resources#resources: }"
rss_mb=$(sed -E 's/.*peak RSS ([0-9]+)\.[0-9]+ MB.*/\1/' <<<"$resources")
if [[ -n "$max_rss_mb" ]] && ((rss_mb >= max_rss_mb)); then
  echo "export-rss: peak RSS ${rss_mb} MB is not under $max_rss_mb MB" >&2
  exit 1
fi
