#include <kpihub/health/source.hpp>
#include <kpihub/http_helpers.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <string_view>

namespace kpihub::health {

HealthSource::HealthSource(sdk::Host& host, sdk::Settings& settings) : host_(host) {
  inbox_ = std::make_unique<sdk::Inbox>(host, settings);
  state_ = std::make_unique<EpisodeState>(settings.string("state_file"));
  if (settings.has("groups")) {
    mapping_.groups.clear();
    const sdk::Settings groups = settings.object("groups");
    for (const auto& kv : groups.raw()) {
      if (!kv.value().is_string()) {
        throw sdk::ConfigError(settings.path() + ".groups." + std::string(kv.key()) +
                               ": expected a task code");
      }
      mapping_.groups[std::string(kv.key())] = std::string(kv.value().as_string());
    }
  }
  if (settings.has("service_prefixes")) {
    const sdk::Settings prefixes = settings.object("service_prefixes");
    for (const auto& kv : prefixes.raw()) {
      if (!kv.value().is_string()) {
        throw sdk::ConfigError(settings.path() + ".service_prefixes." + std::string(kv.key()) +
                               ": expected a task code");
      }
      mapping_.service_prefixes.emplace_back(std::string(kv.key()),
                                             std::string(kv.value().as_string()));
    }
    std::sort(mapping_.service_prefixes.begin(), mapping_.service_prefixes.end(),
              [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  }
  if (settings.has("http")) {
    sdk::Settings h = settings.object("http");
    base_url_ = h.string("base_url");
    while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
    if (auto f = h.optional_string("api_key_file")) {
      api_key_ref_ = "file:" + *f;
    } else if (auto e = h.optional_string("api_key_env")) {
      api_key_ref_ = "env:" + *e;
    } else {
      throw sdk::ConfigError(h.path() + ": api_key_file or api_key_env is required");
    }
    sdk::HttpOptions o;
    o.ca_file = h.optional_string("ca_file");
    o.connect_timeout_ms = static_cast<unsigned>(h.integer("connect_timeout_ms", 5000, 1, 600000));
    o.request_timeout_ms =
        static_cast<unsigned>(h.integer("request_timeout_ms", 120000, 1, 3600000));
    h.reject_unknown();
    (void)host_.secret(api_key_ref_);
    client_ = host_.http_client(o);
  }
  settings.reject_unknown();
}

void HealthSource::pull(std::optional<std::string_view> cursor, sdk::Page& page) {
  const auto open = [this](const sdk::TakenFile& f) -> std::unique_ptr<sdk::FileReader> {
    auto reader = HisReader::open_file(f.path.string(), f.name, static_cast<int64_t>(f.seq),
                                       mapping_, *state_);
    reader->set_arrival(f.arrived_unix_s, host_.utc_offset_minutes());
    reader->set_log([this](const std::string& line) { host_.warn("health: " + line); });
    return reader;
  };
  if (client_) {
    inbox_->pull(cursor, page, open, [this](std::string& state) { state = fetch_next(state); });
  } else {
    inbox_->pull(cursor, page, open);
  }
}

std::string HealthSource::fetch_next(const std::string& state) {
  const std::vector<std::pair<std::string, std::string>> auth{
      {"Authorization", "Bearer " + host_.secret(api_key_ref_)}};
  const std::string list_url = base_url_ + "/his/exports?after=" + sdk::percent_encode(state);
  const auto list = client_->request("GET", list_url, auth);
  auto check = [&](const sdk::HttpResponse& r, const std::string& url) {
    if (r.status == 401 || r.status == 403) {
      throw sdk::AuthError("health: " + url + " refused the API key (HTTP " +
                           std::to_string(r.status) + "); check http.api_key_file");
    }
    if (r.status == 429 || r.status >= 500) {
      throw sdk::TransientError("health: " + url + " answered HTTP " + std::to_string(r.status));
    }
    if (r.status != 200)
      throw sdk::DataError("health: " + url + " answered HTTP " + std::to_string(r.status));
  };
  check(list, list_url);
  boost::system::error_code ec;
  const auto names = boost::json::parse(list.body, ec);
  if (ec || !names.is_array())
    throw sdk::DataError("health: " + list_url + " did not answer a JSON list of names");
  for (const auto& n : names.as_array()) {
    if (!n.is_string()) continue;
    std::string name(n.as_string());
    if (name <= state || name.empty() || name.front() == '.' ||
        name.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos) {
      continue;
    }
    const std::string url = base_url_ + "/his/exports/" + sdk::percent_encode(name);
    const auto file = client_->request("GET", url, auth);
    check(file, url);
    inbox_->put(name, file.body);
    host_.info("health: fetched " + url + " (" + std::to_string(file.body.size()) + " bytes)");
    return name;  // one file per call: the inbox reads it before the next is fetched
  }
  return state;
}

}  // namespace kpihub::health
