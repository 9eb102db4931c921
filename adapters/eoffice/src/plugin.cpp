// The shared library's one export: the E-Office source plugin.
#include <kpihub/eoffice/source.hpp>  // brings sdk.hpp

namespace {

// Shown by `kpihub plugins`; docs/adapters/eoffice.md explains each key.
constexpr const char* kSettingsHelp = R"json({
  "base_url": "https://eoffice.example.gov.vn (required)",
  "client_id": "OAuth2 client id (required)",
  "client_secret_file": "file holding the client secret (or client_secret_env)",
  "client_secret_env": "environment variable holding the client secret",
  "ca_file": "PEM bundle of trusted CAs (default: system store)",
  "insecure_skip_verify": "false; true turns TLS verification off (logged)",
  "page_size": 500,
  "updated_since": "1970-01-01T00:00:00+07:00 (first cursor)",
  "token_path": "/oauth2/token",
  "diary_path": "/api/v1/work-diary",
  "staff_path": "/api/v1/staff",
  "fields": {"<model field or attributes.<name>>": "<source field, dotted path>"},
  "max_attempts": 5,
  "backoff_initial_ms": 200,
  "backoff_max_ms": 30000,
  "retry_after_max_ms": 300000,
  "connect_timeout_ms": 5000,
  "request_timeout_ms": 30000
})json";

}  // namespace

KPIHUB_SOURCE_PLUGIN(kpihub::eoffice::EOfficeSource, "eoffice", "1.0.0",
                     "E-Office work diary and staff list (REST, OAuth2 client credentials)",
                     kSettingsHelp)
