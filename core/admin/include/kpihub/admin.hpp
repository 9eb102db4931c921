// The admin HTTP API and dashboard of a running hub (loopback by default).
//
//   GET  /                         dashboard (HTML with SVG charts drawn here)
//   GET  /healthz, /readyz         liveness, readiness
//   GET  /metrics                  Prometheus text format
//   GET  /api/status               counts, sources, sinks
//   GET  /api/sources              per source: state, cursor, last success/error, lag
//   POST /api/sources/{name}/pull  pull a source now                       (operate)
//   GET  /api/plugins              manifests and states
//   GET  /api/quarantine           ?source=&reason=&limit=&after=
//   POST /api/quarantine/replay    ?id= or ?source=&reason= (none: all)   (operate)
//   GET  /api/dead-letters         ?sink=&limit=&after=
//   POST /api/dead-letters/{id}/replay                                     (operate)
//   GET  /api/reports/{YYYY-MM}    ?agency=&format=json|csv
//   GET  /api/explain              ?staff=&month=
//
// Every /api call needs a bearer token (read role for GET, operate for
// POST); the read-only pages need one unless `open_read_pages` is on.
#pragma once

#include <kpihub/host_services.hpp>
#include <kpihub/hub.hpp>
#include <kpihub/hub_config.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/metrics.hpp>
#include <kpihub/net.hpp>
#include <kpihub/store/storage.hpp>

#include <memory>
#include <string>
#include <vector>

namespace kpihub {

enum class Role { none = 0, read = 1, operate = 2 };

struct AuthResult {
  Role role = Role::none;
  std::string subject;  // token name or JWT "sub", for the audit log
  std::string error;    // why the credentials were refused (empty when none were given)
};

// Checks bearer tokens (SHA-256 in the config) and JWTs (Poco JWT, only the
// configured algorithms). Never logs or returns a token.
class Authenticator {
 public:
  // Reads the JWT key files; throws ConfigError naming the file.
  Authenticator(const AdminConfig& config, const Clock& clock);
  ~Authenticator();
  AuthResult authenticate(const net::Request& request) const;

 private:
  struct Jwt;
  std::vector<AdminToken> tokens_;
  std::unique_ptr<Jwt> jwt_;
  const Clock& clock_;
};

// What the admin API needs from the running hub.
class HubView {
 public:
  virtual ~HubView() = default;
  virtual std::vector<SourceStatus> source_status() const = 0;
  virtual std::vector<PluginStatus> plugin_status() const = 0;
  virtual bool request_pull(const std::string& source) = 0;
  virtual std::string explain(const std::string& staff_code, const Month& month) = 0;
  virtual ReplayResult replay_quarantine(const std::string& source, const std::string& reason,
                                         int64_t id) = 0;
};

// The HubView of a real Hub.
class LiveHubView final : public HubView {
 public:
  explicit LiveHubView(Hub& hub) : hub_(hub) {}
  std::vector<SourceStatus> source_status() const override { return hub_.source_status(); }
  std::vector<PluginStatus> plugin_status() const override { return hub_.plugin_status(); }
  bool request_pull(const std::string& source) override { return hub_.request_pull(source); }
  std::string explain(const std::string& staff_code, const Month& month) override {
    return hub_.explain(staff_code, month);
  }
  ReplayResult replay_quarantine(const std::string& source, const std::string& reason,
                                 int64_t id) override {
    return hub_.replay_quarantine(source, reason, id);
  }

 private:
  Hub& hub_;
};

class AdminApi {
 public:
  AdminApi(const HubConfig& config, Storage& storage, const ReferenceData& reference,
           Metrics& metrics, HubView& hub, const Clock& clock, Logger& logger);
  ~AdminApi();
  net::Reply handle(const net::Request& request);

 private:
  net::Reply route(const net::Request& request, const AuthResult& auth);
  net::Reply dashboard(const net::Request& request);
  net::Reply metrics_text();
  net::Reply report(const std::string& month_text, const net::Request& request);

  const HubConfig& config_;
  Storage& storage_;
  const ReferenceData& reference_;
  Metrics& metrics_;
  HubView& hub_;
  const Clock& clock_;
  const int64_t started_ms_;  // the lag of a source that has not caught up yet counts from it
  Logger& logger_;
  LogRateLimit refused_log_{60000};
  Authenticator auth_;
};

// The AdminApi on a bounded Beast server (net::HttpServer limits: request and
// header size, read timeout for slow clients, connection count).
class AdminServer {
 public:
  AdminServer(const AdminConfig& config, AdminApi& api);
  ~AdminServer();
  void start();  // throws naming the address when it cannot listen
  uint16_t port() const;
  void stop();

 private:
  std::unique_ptr<net::HttpServer> server_;
};

// Monthly results as the CLI and the API give them.
std::string report_json(ScoringState& scoring, const Month& month, const std::string& agency);
std::string report_csv(ScoringState& scoring, const Month& month, const std::string& agency);

}  // namespace kpihub
