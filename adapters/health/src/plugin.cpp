// The shared library's one export: the health (hospital XML) source plugin.
#include <kpihub/health/source.hpp>

namespace {

// Shown by `kpihub plugins`; docs/adapters/health.md explains each key.
constexpr const char* kSettingsHelp = R"json({
  "inbox_dir": "folder the HIS renames finished exports into (required)",
  "create_inbox_dir": "false; true creates a missing inbox_dir (one the hub owns)",
  "state_file": "SQLite file of what each episode credited last time (required)",
  "archive_dir": "<inbox_dir>/.archive (owner-only)",
  "rejected_dir": "<inbox_dir>/.rejected",
  "archive_retention_days": 90,
  "settle_ms": 1000, "unfinished_wait_ms": 60000, "max_file_bytes": 1073741824, "page_records": 500,
  "groups": {"13": "MED.EXAM", "8": "MED.PROC", "18": "MED.PROC", "1": "MED.LAB", "2": "MED.IMAGING",
             "3": "MED.IMAGING", "14": "MED.INPATIENT_DAY", "15": "MED.INPATIENT_DAY", "16": "MED.INPATIENT_DAY"},
  "service_prefixes": {"<MA_DICH_VU prefix>": "<finer task code>"},
  "http": {"base_url": "https://his.example.vn", "api_key_file": "file holding the bearer key (or api_key_env)",
           "ca_file": "PEM bundle", "connect_timeout_ms": 5000, "request_timeout_ms": 120000}
})json";

}  // namespace

KPIHUB_SOURCE_PLUGIN(
    kpihub::health::HealthSource, "health", "1.0.0",
    "Hospital XML exports (Decision 130/4750/3176, legacy 4210) from an inbox folder or the HIS",
    kSettingsHelp)
