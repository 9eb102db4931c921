// The exported entry point: the sink class behind the C ABI.
#include "provincial_sink.hpp"

namespace {
constexpr const char* kSettingsHelp = R"json({
  "base_url": "https://lgsp.example.gov.vn (required)",
  "client_id": "OAuth2 client id (required)",
  "client_secret_file": "file holding the client secret (this or client_secret_env)",
  "client_secret_env": "environment variable holding the client secret",
  "auth": "form (default) or basic: how the client credentials reach the token endpoint",
  "ca_file": "PEM bundle of trusted CAs (default: system store)",
  "client_cert_file": "PEM client certificate for mutual TLS",
  "client_key_file": "PEM client key for mutual TLS",
  "insecure_skip_verify": "false (default); true turns certificate checks off, logged",
  "token_path": "/oauth2/token",
  "records_path": "/api/v1/kpi/records:batch",
  "months_path": "/api/v1/kpi/months:batch",
  "request_timeout_ms": "30000 (100..600000)"
})json";
}  // namespace

KPIHUB_SINK_PLUGIN(kpihub::provincial::ProvincialSink, "provincial", "1.0.0",
                   "Forwards scored records and monthly summaries to the provincial assessment "
                   "system (OAuth2, idempotent batches)",
                   kSettingsHelp)
