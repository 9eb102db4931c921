#include <kpihub/education/source.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace kpihub::education {
namespace {

std::optional<std::chrono::sys_days> parse_date(const std::string& text) {
  int y = 0;
  unsigned m = 0, d = 0;
  char tail = 0;
  if (text.size() != 10 || std::sscanf(text.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) != 3) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{m},
                                        std::chrono::day{d}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd};
}

std::string format_date(std::chrono::sys_days day) {
  const std::chrono::year_month_day ymd{day};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

}  // namespace

EducationSource::EducationSource(sdk::Host& host, sdk::Settings& settings) : host_(host) {
  inbox_ = std::make_unique<sdk::Inbox>(host, settings);
  if (auto schema = settings.optional_string("schema_file")) {
    std::ifstream in(*schema);
    if (!in)
      throw sdk::ConfigError(settings.path() + ".schema_file: cannot read \"" + *schema + "\"");
    std::ostringstream s;
    s << in.rdbuf();
    xsd_ = s.str();
  } else {
    xsd_ = std::string(shipped_schema());
  }
  if (settings.has("http")) {
    sdk::Settings h = settings.object("http");
    HttpPullSettings p;
    p.base_url = h.string("base_url");
    while (!p.base_url.empty() && p.base_url.back() == '/') p.base_url.pop_back();
    p.path = h.string("path", p.path);
    if (auto f = h.optional_string("api_key_file")) {
      p.api_key_ref = "file:" + *f;
    } else if (auto e = h.optional_string("api_key_env")) {
      p.api_key_ref = "env:" + *e;
    } else {
      throw sdk::ConfigError(h.path() + ": api_key_file or api_key_env is required");
    }
    p.ca_file = h.optional_string("ca_file");
    p.from_date = h.string("from_date");
    if (!parse_date(p.from_date)) {
      throw sdk::ConfigError(h.path() + ".from_date: \"" + p.from_date +
                             "\" is not a date (YYYY-MM-DD)");
    }
    p.window_days = static_cast<int>(h.integer("window_days", 7, 1, 92));
    p.lookback_days = static_cast<int>(h.integer("lookback_days", 7, 0, 92));
    p.refresh_minutes = static_cast<int>(h.integer("refresh_minutes", 60, 1, 1440));
    p.connect_timeout_ms = static_cast<unsigned>(h.integer("connect_timeout_ms", 5000, 1, 600000));
    p.request_timeout_ms =
        static_cast<unsigned>(h.integer("request_timeout_ms", 60000, 1, 3600000));
    h.reject_unknown();
    (void)host_.secret(p.api_key_ref);  // a missing key is a configuration error now, not later
    sdk::HttpOptions o;
    o.ca_file = p.ca_file;
    o.connect_timeout_ms = p.connect_timeout_ms;
    o.request_timeout_ms = p.request_timeout_ms;
    client_ = host_.http_client(o);
    http_ = std::move(p);
  }
  settings.reject_unknown();
}

void EducationSource::pull(std::optional<std::string_view> cursor, sdk::Page& page) {
  const auto open = [this](const sdk::TakenFile& f) -> std::unique_ptr<sdk::FileReader> {
    auto reader = TeachingLogReader::open_file(f.path.string(), f.name, xsd_);
    reader->set_arrival(f.arrived_unix_s, host_.utc_offset_minutes());
    reader->set_log([this](const std::string& line) { host_.warn("education: " + line); });
    return reader;
  };
  if (http_) {
    inbox_->pull(cursor, page, open, [this](std::string& state) { state = fetch_next(state); });
  } else {
    inbox_->pull(cursor, page, open);
  }
}

std::string EducationSource::fetch_next(const std::string& state) {
  std::string from_text = state.empty() ? http_->from_date : state;
  std::optional<int64_t> fetched_ms;
  if (const auto at = from_text.find('@'); at != std::string::npos) {
    try {
      fetched_ms = std::stoll(from_text.substr(at + 1));
    } catch (const std::exception&) {
      throw sdk::DataError("education: stored fetch state \"" + state + "\" is not a date@time");
    }
    from_text.resize(at);
  }
  const auto from = parse_date(from_text);
  if (!from) throw sdk::DataError("education: stored fetch state \"" + state + "\" is not a date");
  const int64_t now_ms = host_.now_unix_ms();
  const int64_t local_ms = now_ms + int64_t{host_.utc_offset_minutes()} * 60'000;
  const std::chrono::sys_days today{std::chrono::days{local_ms / 86'400'000}};
  if (*from > today) return state;  // nothing new until tomorrow
  const auto to = std::min(*from + std::chrono::days{http_->window_days - 1}, today);
  // Today's window was fetched a moment ago: nothing to do until refresh_minutes
  // have passed (otherwise every pull would fetch it again and never catch up).
  if (to == today && fetched_ms && *fetched_ms <= now_ms &&
      now_ms - *fetched_ms < int64_t{http_->refresh_minutes} * 60'000) {
    return state;
  }
  const auto first_day = *parse_date(http_->from_date);
  const auto ask_from = std::max(first_day, *from - std::chrono::days{http_->lookback_days});
  const std::string url =
      http_->base_url + http_->path + "?from=" + format_date(ask_from) + "&to=" + format_date(to);
  const auto response = client_->request(
      "GET", url, {{"Authorization", "Bearer " + host_.secret(http_->api_key_ref)}});
  if (response.status == 401 || response.status == 403) {
    throw sdk::AuthError(
        "education: " + url + " refused the API key (HTTP " + std::to_string(response.status) +
        "); check http." +
        (http_->api_key_ref.rfind("env:", 0) == 0 ? "api_key_env" : "api_key_file"));
  }
  if (response.status == 429 || response.status >= 500) {
    throw sdk::TransientError("education: " + url + " answered HTTP " +
                              std::to_string(response.status));
  }
  if (response.status != 200) {
    throw sdk::DataError("education: " + url + " answered HTTP " + std::to_string(response.status));
  }
  // Named by window and fetch time: a window fetched again (today's, while the
  // day is not over) is a new file whose unchanged lessons change nothing.
  inbox_->put("http-" + format_date(ask_from) + "-" + format_date(to) + "-" +
                  std::to_string(host_.now_unix_ms()) + ".xml",
              response.body);
  host_.info("education: fetched " + url + " (" + std::to_string(response.body.size()) + " bytes)");
  // Today's window is fetched again (after refresh_minutes) until the day is over.
  return to < today ? format_date(to + std::chrono::days{1})
                    : format_date(*from) + "@" + std::to_string(now_ms);
}

}  // namespace kpihub::education
