// The shared library's one export: the education (teaching log) source plugin.
#include <kpihub/education/source.hpp>

namespace {

// Shown by `kpihub plugins`; docs/adapters/education.md explains each key.
constexpr const char* kSettingsHelp = R"json({
  "inbox_dir": "folder the school system renames finished exports into (required)",
  "create_inbox_dir": "false; true creates a missing inbox_dir (one the hub owns)",
  "archive_dir": "<inbox_dir>/.archive",
  "rejected_dir": "<inbox_dir>/.rejected",
  "file_suffixes": [".xml"],
  "settle_ms": 1000,
  "unfinished_wait_ms": 60000,
  "max_file_bytes": 1073741824,
  "archive_retention_days": 90,
  "page_records": 500,
  "schema_file": "an XSD to use instead of the shipped teaching-log-1.xsd",
  "http": {"base_url": "https://school.example.edu.vn", "path": "/export/teaching-log",
           "api_key_file": "file holding the bearer API key (or api_key_env)",
           "ca_file": "PEM bundle", "from_date": "YYYY-MM-DD (required)", "window_days": 7,
           "lookback_days": 7, "refresh_minutes": 60,
           "connect_timeout_ms": 5000, "request_timeout_ms": 60000}
})json";

}  // namespace

KPIHUB_SOURCE_PLUGIN(kpihub::education::EducationSource, "education", "1.0.0",
                     "Teaching logs (urn:vn:edu:teaching-log:1 XML) from an inbox folder or the "
                     "school system's HTTP export",
                     kSettingsHelp)
