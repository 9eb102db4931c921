#include <kpihub/admin.hpp>

#include "openapi_text.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace kpihub {
namespace json = boost::json;

namespace {

net::Reply json_reply(int status, const json::value& body) {
  net::Reply r;
  r.status = status;
  r.headers = {{"Content-Type", "application/json; charset=utf-8"}, {"Cache-Control", "no-store"}};
  r.body = json::serialize(body);
  return r;
}

net::Reply error_reply(int status, const std::string& code, const std::string& message) {
  return json_reply(status, json::object{{"error", code}, {"message", message}});
}

std::string query(const net::Request& r, const std::string& key, const std::string& fallback = "") {
  auto it = r.query.find(key);
  return it == r.query.end() ? fallback : it->second;
}

// A non-negative integer query parameter; throws a 400-worthy message.
int64_t query_int(const net::Request& r, const std::string& key, int64_t fallback, int64_t max,
                  int64_t min = 0) {
  const std::string text = query(r, key);
  if (text.empty()) return fallback;
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    throw std::invalid_argument(key + ": \"" + text + "\" is not a whole number from " +
                                std::to_string(min) + " to " + std::to_string(max));
  }
  return v;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    const std::size_t j = path.find('/', i);
    if (i < path.size()) parts.push_back(path.substr(i, j == std::string::npos ? j : j - i));
    if (j == std::string::npos) break;
    i = j;
  }
  return parts;
}

json::object source_json(const SourceStatus& s, int64_t now_ms) {
  json::object o{{"name", s.name},
                 {"plugin", s.plugin},
                 {"state", s.state},
                 {"cursor", s.cursor ? json::value(*s.cursor) : json::value(nullptr)},
                 {"last_success_ms", s.last_success_ms},
                 {"last_caught_up_ms", s.last_caught_up_ms},
                 {"last_error_ms", s.last_error_ms},
                 {"last_error", s.last_error},
                 {"progress", s.progress},
                 {"pages", s.pages},
                 {"records", s.records}};
  // Lag: how long since the source was last known to be fully read.
  o["lag_seconds"] = s.last_caught_up_ms > 0 ? json::value((now_ms - s.last_caught_up_ms) / 1000)
                                             : json::value(nullptr);
  return o;
}

bool is_read_page(const std::string& path) {
  return path == "/" || path == "/metrics" || path == "/healthz" || path == "/readyz";
}

}  // namespace

AdminApi::AdminApi(const HubConfig& config, Storage& storage, const ReferenceData& reference,
                   Metrics& metrics, HubView& hub, const Clock& clock, Logger& logger)
    : config_(config),
      storage_(storage),
      reference_(reference),
      metrics_(metrics),
      hub_(hub),
      clock_(clock),
      started_ms_(clock.now_unix_ms()),
      logger_(logger),
      auth_(config.admin, clock) {
  const std::pair<const char*, const char*> gauges[] = {
      {"kpihub_outbox_depth", "Outbox items the sink has not delivered yet"},
      {"kpihub_records", "Records in the store"},
      {"kpihub_quarantine_entries", "Quarantine entries in the store"},
      {"kpihub_dead_letters", "Dead letters in the store"},
      {"kpihub_scoring_revisions_to_read", "Stored revisions the scorer has not read yet"},
      {"kpihub_scoring_staff_months_to_score", "Staff months marked and not yet rescored"},
      {"kpihub_source_up",
       "1 while the source is pulled without error, 0 while it fails or is stuck"},
      {"kpihub_source_lag_seconds",
       "Seconds since the source last had nothing newer (since the hub started, if not yet)"},
      {"kpihub_plugin_loaded", "1 for each plugin loaded from plugin_dir"},
  };
  for (const auto& [name, help] : gauges) metrics_.declare(name, MetricType::gauge, help);
}

AdminApi::~AdminApi() = default;

net::Reply AdminApi::handle(const net::Request& request) {
  const AuthResult auth = auth_.authenticate(request);
  const bool api = request.path == "/api" || request.path.rfind("/api/", 0) == 0;
  const bool open = !api && is_read_page(request.path) && config_.admin.open_read_pages;
  if (!auth.error.empty() && !open) {
    // At most one line a minute: 5,000 forged tokens wrote 780 KB of log (issue 19).
    if (uint64_t suppressed = 0; refused_log_.allow(clock_.now_unix_ms(), suppressed)) {
      logger_.warn("admin", "refused " + request.method + " " + request.path + " from " +
                                request.remote + ": " + auth.error +
                                (suppressed ? " (and " + std::to_string(suppressed) +
                                                  " more refused requests since the last line)"
                                            : std::string()));
    }
    auto r = error_reply(401, "unauthorized", auth.error);
    r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return r;
  }
  if (!open && auth.role == Role::none) {
    auto r = error_reply(401, "unauthorized",
                         "this needs a bearer token (Authorization: Bearer <token>)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  const Role needed =
      request.method == "GET" || request.method == "HEAD" ? Role::read : Role::operate;
  if (!open && auth.role < needed) {
    return error_reply(
        403, "forbidden",
        "the token's role is read; " + request.method + " " + request.path + " needs operate");
  }
  try {
    return route(request, auth);
  } catch (const std::invalid_argument& e) {
    return error_reply(400, "bad_request", e.what());
  } catch (const std::exception& e) {
    logger_.error("admin", request.method + " " + request.path + ": " + e.what());
    return error_reply(500, "internal", e.what());
  }
}

net::Reply AdminApi::route(const net::Request& request, const AuthResult& auth) {
  const auto parts = split_path(request.path);
  const std::string& method = request.method;
  const int64_t now = clock_.now_unix_ms();
  auto not_found = [&] {
    return error_reply(404, "not_found", "no such endpoint: " + method + " " + request.path);
  };

  if (method == "GET" && request.path == "/healthz") {
    return json_reply(200, json::object{{"status", "ok"}});
  }
  if (method == "GET" && request.path == "/readyz") {
    json::array problems;
    for (const auto& s : hub_.source_status()) {
      if (!s.up()) {
        problems.push_back(
            json::string("source " + s.name + " is " + s.state + ": " + s.last_error));
      }
    }
    try {
      (void)storage_.views().counts();
    } catch (const std::exception& e) {
      problems.push_back(json::string(std::string("store: ") + e.what()));
    }
    return json_reply(problems.empty() ? 200 : 503,
                      json::object{{"ready", problems.empty()}, {"problems", problems}});
  }
  if (method == "GET" && request.path == "/metrics") return metrics_text();
  if (method == "GET" && request.path == "/") return dashboard(request);

  if (parts.empty() || parts[0] != "api") return not_found();
  const std::string what = parts.size() > 1 ? parts[1] : "";

  if (method == "GET" && what == "openapi.json" && parts.size() == 2) {
    net::Reply r;
    r.headers = {{"Content-Type", "application/json; charset=utf-8"}};
    r.body = std::string(kOpenApiDocument);
    return r;
  }
  if (method == "GET" && what == "status" && parts.size() == 2) {
    const auto c = storage_.views().counts();
    json::array sources, sinks;
    for (const auto& s : hub_.source_status()) sources.push_back(source_json(s, now));
    for (const auto& s : config_.sinks) {
      sinks.push_back(
          json::object{{"name", s.name}, {"outbox_depth", storage_.outbox().depth(s.name)}});
    }
    return json_reply(200, json::object{{"hub_id", config_.hub_id},
                                        {"records", c.records},
                                        {"revisions", c.revisions},
                                        {"quarantined", c.quarantined},
                                        {"dead_letters", c.dead_letters},
                                        {"outbox_pending", c.outbox_pending},
                                        {"revisions_to_read", c.revisions_to_read},
                                        {"staff_months_to_score", c.staff_months_to_score},
                                        {"sources", sources},
                                        {"sinks", sinks}});
  }
  if (what == "sources") {
    if (method == "GET" && parts.size() == 2) {
      json::array out;
      for (const auto& s : hub_.source_status()) out.push_back(source_json(s, now));
      return json_reply(200, out);
    }
    if (method == "POST" && parts.size() == 4 && parts[3] == "pull") {
      if (!hub_.request_pull(parts[2])) {
        return error_reply(404, "not_found", "no running source named \"" + parts[2] + "\"");
      }
      storage_.views().audit(auth.subject, "pull source", parts[2]);
      logger_.info("admin", auth.subject + " asked source " + parts[2] + " to pull now");
      return json_reply(202, json::object{{"source", parts[2]}, {"pull", "requested"}});
    }
    return not_found();
  }
  if (method == "GET" && what == "plugins" && parts.size() == 2) {
    json::array out;
    for (const auto& p : hub_.plugin_status()) {
      out.push_back(json::object{{"name", p.name},
                                 {"kind", p.kind},
                                 {"version", p.version},
                                 {"description", p.description},
                                 {"file", p.file},
                                 {"state", p.state},
                                 {"reason", p.reason}});
    }
    return json_reply(200, out);
  }
  if (method == "GET" && what == "quarantine" && parts.size() == 2) {
    const auto limit = static_cast<std::size_t>(query_int(request, "limit", 50, 1000, 1));
    const auto rows =
        storage_.views().quarantine(query(request, "source"), query(request, "reason"), limit,
                                    query_int(request, "after", 0, INT64_MAX));
    json::array out;
    for (const auto& r : rows) {
      out.push_back(json::object{{"id", r.id},
                                 {"source", r.entry.source_system},
                                 {"record_id", r.entry.record_id},
                                 {"reason", std::string(to_string(r.entry.reason))},
                                 {"field", r.entry.field},
                                 {"message", r.entry.message},
                                 {"location", r.entry.location},
                                 {"payload", r.entry.payload},
                                 {"created_at_ms", r.created_at_unix_ms}});
    }
    json::object page{{"entries", out}};
    if (rows.size() == limit) page["next_after"] = rows.back().id;
    return json_reply(200, page);
  }
  if (method == "POST" && what == "quarantine" && parts.size() == 3 && parts[2] == "replay") {
    const int64_t id = query_int(request, "id", 0, INT64_MAX);
    const std::string source = query(request, "source");
    const std::string reason = query(request, "reason");
    const ReplayResult r = hub_.replay_quarantine(source, reason, id);
    const std::string what_text =
        id > 0 ? "id " + std::to_string(id) : "source \"" + source + "\" reason \"" + reason + "\"";
    storage_.views().audit(auth.subject, "replay quarantine", what_text);
    logger_.info("admin", auth.subject + " replayed quarantine (" + what_text +
                              "): " + std::to_string(r.replayed) + " stored, " +
                              std::to_string(r.still_failing) + " still failing");
    json::array problems;
    for (const auto& p : r.problems) problems.push_back(json::string(p));
    return json_reply(200, json::object{{"replayed", r.replayed},
                                        {"still_failing", r.still_failing},
                                        {"not_replayable", r.not_replayable},
                                        {"problems", problems}});
  }
  if (what == "dead-letters") {
    if (method == "GET" && parts.size() == 2) {
      const auto limit = static_cast<std::size_t>(query_int(request, "limit", 50, 1000, 1));
      const auto rows = storage_.outbox().dead_letters(query(request, "sink"), limit,
                                                       query_int(request, "after", 0, INT64_MAX));
      json::array out;
      for (const auto& d : rows) {
        out.push_back(json::object{{"id", d.id},
                                   {"sink", d.sink},
                                   {"batch_id", d.batch_id},
                                   {"key", d.key},
                                   {"code", d.code},
                                   {"message", d.message},
                                   {"created_at_ms", d.created_at_unix_ms},
                                   {"replayed", d.replayed}});
      }
      json::object page{{"entries", out}};
      if (rows.size() == limit) page["next_after"] = rows.back().id;
      return json_reply(200, page);
    }
    if (method == "POST" && parts.size() == 4 && parts[3] == "replay") {
      int64_t id = 0;
      const auto [end, ec] =
          std::from_chars(parts[2].data(), parts[2].data() + parts[2].size(), id);
      if (ec != std::errc() || end != parts[2].data() + parts[2].size()) {
        return error_reply(400, "bad_request", "\"" + parts[2] + "\" is not a dead letter id");
      }
      if (!storage_.outbox().replay_dead_letter(id)) {
        return error_reply(404, "not_found", "no dead letter with id " + parts[2]);
      }
      storage_.views().audit(auth.subject, "replay dead letter", parts[2]);
      logger_.info("admin", auth.subject + " replayed dead letter " + parts[2]);
      return json_reply(202, json::object{{"dead_letter", id}, {"replay", "queued"}});
    }
    return not_found();
  }
  if (method == "GET" && what == "reports" && parts.size() == 3) return report(parts[2], request);
  if (method == "POST" && what == "months" && parts.size() == 4 && parts[3] == "rescore") {
    const auto month = Month::parse(parts[2]);
    if (!month) throw std::invalid_argument("month: \"" + parts[2] + "\" is not YYYY-MM");
    // The running scorer takes the marks as it takes a page's, under the rules it has loaded
    // (SIGHUP reloads a changed rules file first); what changed goes out again.
    const std::size_t marked = storage_.scoring().mark_month_dirty(month->str());
    storage_.views().audit(auth.subject, "rescore",
                           month->str() + " under " + reference_.rules.version);
    logger_.info("admin", auth.subject + " asked to rescore " + month->str() + " under " +
                              reference_.rules.version + ": " + std::to_string(marked) +
                              " staff months marked");
    return json_reply(202, json::object{{"month", month->str()},
                                        {"rules_version", reference_.rules.version},
                                        {"staff_months_marked", marked}});
  }
  if (method == "GET" && what == "explain" && parts.size() == 2) {
    const std::string staff = query(request, "staff");
    const auto month = Month::parse(query(request, "month"));
    if (staff.empty()) throw std::invalid_argument("staff: a staff code is required");
    if (!month)
      throw std::invalid_argument("month: \"" + query(request, "month") + "\" is not YYYY-MM");
    net::Reply r;
    r.headers = {{"Content-Type", "text/plain; charset=utf-8"}};
    r.body = hub_.explain(staff, *month);
    return r;
  }
  return not_found();
}

net::Reply AdminApi::report(const std::string& month_text, const net::Request& request) {
  const auto month = Month::parse(month_text);
  if (!month) throw std::invalid_argument("month: \"" + month_text + "\" is not YYYY-MM");
  const std::string format = query(request, "format", "json");
  const std::string agency = query(request, "agency");
  net::Reply r;
  if (format == "json") {
    r.headers = {{"Content-Type", "application/json; charset=utf-8"}};
    r.body = report_json(storage_.scoring(), *month, agency);
  } else if (format == "csv") {
    r.headers = {{"Content-Type", "text/csv; charset=utf-8"},
                 {"Content-Disposition", "attachment; filename=\"kpi-" + month->str() + ".csv\""}};
    r.body = report_csv(storage_.scoring(), *month, agency);
  } else {
    throw std::invalid_argument("format: \"" + format + "\" is not json or csv");
  }
  return r;
}

net::Reply AdminApi::metrics_text() {
  // Gauges read at scrape time, so they are right even after a restart.
  for (const auto& s : config_.sinks) {
    metrics_.set("kpihub_outbox_depth", {{"sink", s.name}},
                 static_cast<double>(storage_.outbox().depth(s.name)));
  }
  const auto counts = storage_.views().counts();
  metrics_.set("kpihub_records", {}, static_cast<double>(counts.records));
  metrics_.set("kpihub_quarantine_entries", {}, static_cast<double>(counts.quarantined));
  metrics_.set("kpihub_dead_letters", {}, static_cast<double>(counts.dead_letters));
  metrics_.set("kpihub_scoring_revisions_to_read", {},
               static_cast<double>(counts.revisions_to_read));
  metrics_.set("kpihub_scoring_staff_months_to_score", {},
               static_cast<double>(counts.staff_months_to_score));
  const int64_t now = clock_.now_unix_ms();
  for (const auto& s : hub_.source_status()) {
    const MetricLabels label{{"source", s.name}};
    metrics_.set("kpihub_source_up", label, s.up() ? 1 : 0);
    // A source that has not caught up since the hub started lags since then: its series
    // exists, so the lag alert can fire for a source stuck from the start.
    const int64_t since = s.last_caught_up_ms > 0 ? s.last_caught_up_ms : started_ms_;
    metrics_.set("kpihub_source_lag_seconds", label, static_cast<double>(now - since) / 1000.0);
  }
  for (const auto& p : hub_.plugin_status()) {
    if (p.state != "loaded") continue;
    metrics_.set("kpihub_plugin_loaded", {{"plugin", p.name}, {"kind", p.kind}}, 1);
  }
  net::Reply r;
  r.headers = {{"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
  r.body = metrics_.prometheus_text();
  return r;
}

AdminServer::AdminServer(const AdminConfig& config, AdminApi& api) {
  net::ServerOptions options;
  const auto colon = config.listen.rfind(':');
  options.address = config.listen.substr(0, colon);
  options.port = static_cast<uint16_t>(std::stoi(config.listen.substr(colon + 1)));
  options.tls_cert_file = config.tls_cert_file;
  options.tls_key_file = config.tls_key_file;
  options.max_connections = config.max_connections;
  options.max_connections_per_client = config.max_connections_per_client;
  options.max_body_bytes = 64 * 1024;  // the API takes no large bodies
  options.max_header_bytes = 8 * 1024;
  options.header_timeout = std::chrono::milliseconds(5000);
  options.read_timeout = std::chrono::milliseconds(10000);
  options.threads = 2;
  server_ = std::make_unique<net::HttpServer>(
      options, [&api](const net::Request& r) { return api.handle(r); });
}

AdminServer::~AdminServer() {
  stop();
}
void AdminServer::start() {
  server_->start();
}
uint16_t AdminServer::port() const {
  return server_->port();
}
void AdminServer::stop() {
  server_->stop();
}

}  // namespace kpihub
