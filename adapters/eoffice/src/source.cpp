#include <kpihub/eoffice/source.hpp>
#include <kpihub/http_helpers.hpp>
#include <kpihub/json_keys.hpp>
#include <kpihub/text.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <ctime>
#include <iomanip>
#include <locale>
#include <sstream>

namespace kpihub::eoffice {

namespace json = boost::json;

namespace {

std::string excerpt(std::string_view body) {
  constexpr std::size_t kMax = 200;
  std::string text = sdk::replace_invalid_utf8(body.substr(0, kMax));
  if (body.size() > kMax) text += "…";
  return text;
}

// What may be said of a token endpoint's answer: never its text, which may hold a token or
// credentials (issue 19: an answer with `accessToken` reached the log, the dashboard and
// /readyz whole). An OAuth2 error code (RFC 6749 5.2), or the keys of a JSON object, or the size.
std::string describe_token_answer(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  const json::object* o = ec ? nullptr : v.if_object();
  if (o == nullptr) {
    return "an answer of " + std::to_string(body.size()) + " bytes that is not a JSON object";
  }
  if (const auto* error = o->if_contains("error"); error && error->is_string()) {
    return "error \"" + excerpt(error->get_string().subview().substr(0, 60)) + "\"";
  }
  std::string keys;
  for (const auto& kv : *o) {
    keys += (keys.empty() ? "" : ", ") + excerpt(kv.key().substr(0, 40));
  }
  return "a JSON object with the keys " + (keys.empty() ? std::string("(none)") : keys) +
         " (values not shown)";
}

bool is_overload(int status) {
  return status == 429 || status == 503;
}
bool is_retryable(int status) {
  return is_overload(status) || status >= 500;
}

}  // namespace

// --------------------------------------------------------------- helpers ---

void WalkGuard::next(const std::string& url, const std::optional<std::string>& token,
                     bool progressed) {
  stalled_ = progressed ? 0 : stalled_ + 1;
  if (!token) return;
  if (!tokens_.insert(std::hash<std::string>{}(*token)).second) {
    throw sdk::DataError("eoffice: " + url + " handed back the page token " + excerpt(*token) +
                         " it gave before in this walk: the walk makes no progress; stopped");
  }
  if (stalled_ >= max_stalled_) {
    throw sdk::DataError("eoffice: " + url + " gave " + std::to_string(stalled_) +
                         " pages in a row with nothing new (next page token " + excerpt(*token) +
                         "): the walk makes no progress; stopped (max_stalled_pages)");
  }
}

// -------------------------------------------------------------- settings ---

SourceSettings SourceSettings::read(sdk::Settings& s) {
  SourceSettings o;
  const auto fail = [&](std::string_view key, const std::string& why) {
    return sdk::ConfigError(s.path() + "." + std::string(key) + ": " + why);
  };
  o.base_url = s.string("base_url");
  if (o.base_url.rfind("http://", 0) != 0 && o.base_url.rfind("https://", 0) != 0) {
    throw fail("base_url", "\"" + o.base_url + "\" is not an http:// or https:// URL");
  }
  while (!o.base_url.empty() && o.base_url.back() == '/') o.base_url.pop_back();
  o.client_id = s.string("client_id");
  const auto secret_file = s.optional_string("client_secret_file");
  const auto secret_env = s.optional_string("client_secret_env");
  if (secret_file && secret_env) {
    throw fail("client_secret_file", "give client_secret_file or client_secret_env, not both");
  }
  if (!secret_file && !secret_env) {
    throw fail("client_secret_file", "required setting is missing (or client_secret_env)");
  }
  o.client_secret_ref = secret_file ? "file:" + *secret_file : "env:" + *secret_env;
  o.ca_file = s.optional_string("ca_file");
  o.insecure_skip_verify = s.boolean("insecure_skip_verify", false);
  o.page_size = s.integer("page_size", 500, 1, 10000);
  o.updated_since = s.string("updated_since", o.updated_since);
  if (!parse_rfc3339_ms(o.updated_since)) {
    throw fail("updated_since",
               "\"" + o.updated_since + "\" is not an RFC 3339 timestamp with offset");
  }
  for (auto [key, target] :
       {std::pair{"token_path", &o.token_path}, std::pair{"diary_path", &o.diary_path},
        std::pair{"staff_path", &o.staff_path}}) {
    *target = s.string(key, *target);
    if (target->empty() || target->front() != '/') {
      throw fail(key, "\"" + *target + "\" must start with /");
    }
  }
  sdk::Settings fields = s.object("fields");
  for (const auto& kv : fields.raw()) {
    const std::string key(kv.key());
    const std::optional<std::string> source = fields.optional_string(key);
    try {
      o.fields.set(key, source.value_or(""));
    } catch (const std::invalid_argument& e) {
      throw sdk::ConfigError(fields.path() + "." + key + ": " + e.what());
    }
  }
  o.max_attempts = s.integer("max_attempts", 5, 1, 100);
  o.max_stalled_pages = s.integer("max_stalled_pages", 1000, 1, 1000000);
  o.pull_budget_ms = s.integer("pull_budget_ms", 600000, 1000, 86400000);
  o.backoff_initial_ms = s.integer("backoff_initial_ms", 200, 1, 600000);
  o.backoff_max_ms = s.integer("backoff_max_ms", 30000, o.backoff_initial_ms, 3600000);
  o.retry_after_max_ms = s.integer("retry_after_max_ms", 300000, 0, 3600000);
  o.connect_timeout_ms = s.integer("connect_timeout_ms", 5000, 1, 600000);
  o.request_timeout_ms = s.integer("request_timeout_ms", 30000, 1, 3600000);
  return o;
}

// ---------------------------------------------------------------- cursor ---

std::string Cursor::encode() const {
  json::object obj;
  obj["updated_at"] = key.updated_at;
  obj["id"] = key.id;
  if (page_token) obj["page_token"] = *page_token;
  return json::serialize(obj);
}

Cursor Cursor::decode(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return sdk::DataError("eoffice: stored cursor " + excerpt(text) + " is unreadable: " + why);
  };
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec) throw bad(ec.message());
  if (!v.is_object()) throw bad("not a JSON object");
  const auto* at = v.get_object().if_contains("updated_at");
  const auto* id = v.get_object().if_contains("id");
  if (!at || !at->is_string() || !parse_rfc3339_ms(at->get_string())) {
    throw bad("updated_at is not an RFC 3339 timestamp");
  }
  if (!id || !id->is_string()) throw bad("id is not a string");
  Cursor c{{std::string(at->get_string()), std::string(id->get_string())}, std::nullopt};
  if (const auto* token = v.get_object().if_contains("page_token"); token && token->is_string()) {
    c.page_token = std::string(token->get_string());
  }
  return c;
}

// ---------------------------------------------------------------- source ---

namespace {

Normalizer make_normalizer(const FieldMap& map, const std::string& path) {
  try {
    return Normalizer(map);
  } catch (const std::invalid_argument& e) {
    throw sdk::ConfigError(path + "." + e.what());
  }
}

}  // namespace

EOfficeSource::EOfficeSource(sdk::Host& host, sdk::Settings& settings)
    : host_(host),
      settings_(SourceSettings::read(settings)),
      normalizer_(make_normalizer(settings_.fields, settings.path())),
      jitter_(std::random_device{}()),
      walk_guard_(static_cast<std::size_t>(settings_.max_stalled_pages)) {
  // Fail at start, naming the reference, rather than at the first pull.
  (void)host_.secret(settings_.client_secret_ref);
  sdk::HttpOptions options;
  options.ca_file = settings_.ca_file;
  options.insecure_skip_verify = settings_.insecure_skip_verify;
  options.connect_timeout_ms = static_cast<unsigned>(settings_.connect_timeout_ms);
  options.request_timeout_ms = static_cast<unsigned>(settings_.request_timeout_ms);
  http_ = host_.http_client(options);
  if (settings_.insecure_skip_verify) {
    host_.warn("eoffice: TLS certificate and host-name checks are OFF for " + settings_.base_url +
               " (insecure_skip_verify: true)");
  }
  // Every series exists at 0 from the start, so an alert can watch it.
  host_.declare_counter("eoffice_token_fetches_total", "OAuth2 tokens fetched from E-Office");
  host_.declare_counter("eoffice_http_retries_total",
                        "E-Office requests tried again, by cause (network, 5xx, overload)");
  host_.declare_counter("eoffice_page_token_restarts_total",
                        "Walks started again from the cursor because a page token expired");
  host_.declare_counter("eoffice_items_total",
                        "Diary items read, by outcome (record, rejected, skipped)");
  host_.metric_add("eoffice_token_fetches_total", 0);
  host_.metric_add("eoffice_page_token_restarts_total", 0);
  for (const char* cause : {"network", "5xx", "overload"}) {
    host_.metric_add("eoffice_http_retries_total", {{"cause", cause}}, 0);
  }
  for (const char* outcome : {"record", "rejected", "skipped"}) {
    host_.metric_add("eoffice_items_total", {{"outcome", outcome}}, 0);
  }
}

void EOfficeSource::wait_before_retry(int attempt, const sdk::HttpResponse* response,
                                      const std::string& url, const std::string& cause) {
  std::optional<int64_t> wait;
  if (response && is_overload(response->status)) {
    if (const auto header = response->header("Retry-After")) {
      wait = sdk::retry_after_ms(*header, host_.now_unix_ms());
      if (wait) wait = std::min(*wait, settings_.retry_after_max_ms);
    }
  }
  if (!wait) {
    // Exponential backoff with jitter in [half, full] so that many hubs
    // hitting one E-Office do not retry in step.
    const int shift = std::min(attempt - 1, 30);
    const int64_t full =
        std::min<int64_t>(settings_.backoff_max_ms, settings_.backoff_initial_ms << shift);
    const int64_t half = full / 2;
    wait = half + static_cast<int64_t>(jitter_() % static_cast<uint64_t>(full - half + 1));
  }
  const int64_t now = host_.now_unix_ms();
  if (now + *wait > pull_deadline_ms_) {
    throw sdk::TransientError(
        "eoffice: " + url + " failed (" + cause + ") and the pull's time budget of " +
        std::to_string(settings_.pull_budget_ms / 1000) +
        " s (pull_budget_ms) ends before the next attempt; the host pulls again later");
  }
  // The first failure of a request is said at once, with its cause (issue 19: the first
  // warning came after 5 failed attempts, 152 s); then at most one warning a minute.
  const std::string line = "eoffice: " + url + " failed (" + cause + "); retrying in " +
                           std::to_string(*wait) + " ms (attempt " + std::to_string(attempt + 1) +
                           " of " + std::to_string(settings_.max_attempts) + ")";
  if (attempt == 1 && now >= next_retry_warning_ms_) {
    host_.warn(line + (retries_not_warned_ > 0 ? " (" + std::to_string(retries_not_warned_) +
                                                     " more retries since the last warning)"
                                               : std::string()));
    next_retry_warning_ms_ = now + kRetryWarningIntervalMs;
    retries_not_warned_ = 0;
  } else {
    host_.debug(line);
    ++retries_not_warned_;
  }
  total_wait_ms_ += static_cast<uint64_t>(*wait);
  host_.sleep_ms(static_cast<uint32_t>(std::min<int64_t>(*wait, UINT32_MAX)));
  if (host_.stop_requested()) {
    throw sdk::TransientError("eoffice: stop requested while waiting to retry " + url);
  }
}

sdk::AccessToken EOfficeSource::fetch_token() {
  const std::string url = settings_.base_url + settings_.token_path;
  const std::string secret = host_.secret(settings_.client_secret_ref);
  const std::string body =
      "grant_type=client_credentials&client_id=" + sdk::percent_encode(settings_.client_id) +
      "&client_secret=" + sdk::percent_encode(secret);
  const std::string secret_setting = settings_.client_secret_ref.rfind("file:", 0) == 0
                                         ? "client_secret_file"
                                         : "client_secret_env";
  std::string last_failure;
  for (int attempt = 1;; ++attempt) {
    if (host_.stop_requested()) {
      throw sdk::TransientError("eoffice: stop requested while fetching a token from " + url);
    }
    sdk::HttpResponse resp;
    try {
      resp = http_->request(
          "POST", url,
          {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}},
          body);
    } catch (const sdk::Error& e) {
      if (e.status() != KPIHUB_ERR_TRANSIENT)
        throw sdk::Error(e.status(), std::string("eoffice: ") + e.what());
      last_failure = e.what();
      if (attempt >= settings_.max_attempts) break;
      wait_before_retry(attempt, nullptr, url, last_failure);
      continue;
    }
    if (resp.status == 401 ||
        (resp.status == 400 && resp.body.find("invalid_client") != std::string::npos)) {
      throw sdk::AuthError("eoffice: client credentials refused by " + url +
                           " (check client_id and " + secret_setting + ")");
    }
    if (is_retryable(resp.status)) {
      last_failure = "HTTP " + std::to_string(resp.status);
      if (attempt >= settings_.max_attempts) break;
      wait_before_retry(attempt, &resp, url, last_failure);
      continue;
    }
    if (resp.status != 200) {
      throw sdk::ConfigError("eoffice: " + url + " answered HTTP " + std::to_string(resp.status) +
                             " to the token request: " + describe_token_answer(resp.body));
    }
    std::optional<sdk::AccessToken> token = sdk::read_token_answer(resp.body, host_.now_unix_ms());
    if (!token) {
      throw sdk::DataError("eoffice: token answer from " + url +
                           " has no access_token: " + describe_token_answer(resp.body));
    }
    host_.metric_add("eoffice_token_fetches_total", 1);
    return std::move(*token);
  }
  throw sdk::TransientError("eoffice: giving up on " + url + " after " +
                            std::to_string(settings_.max_attempts) +
                            " attempts; last failure: " + last_failure);
}

const std::string& EOfficeSource::token() {
  if (!token_ || host_.now_unix_ms() >= token_->renew_at_unix_ms) token_ = fetch_token();
  return token_->value;
}

sdk::HttpResponse EOfficeSource::get(const std::string& url) {
  bool renewed = false;
  std::string last_failure;
  for (int attempt = 1;;) {
    if (host_.stop_requested()) {
      throw sdk::TransientError("eoffice: stop requested while fetching " + url);
    }
    const std::string bearer = "Bearer " + token();
    sdk::HttpResponse resp;
    try {
      resp =
          http_->request("GET", url, {{"Authorization", bearer}, {"Accept", "application/json"}});
    } catch (const sdk::Error& e) {
      // Certificate and host-name refusals are configuration: no retry.
      if (e.status() != KPIHUB_ERR_TRANSIENT)
        throw sdk::Error(e.status(), std::string("eoffice: ") + e.what());
      last_failure = e.what();
      host_.metric_add("eoffice_http_retries_total", {{"cause", "network"}}, 1);
      if (attempt >= settings_.max_attempts) break;
      wait_before_retry(attempt++, nullptr, url, last_failure);
      continue;
    }
    if (resp.status == 401) {
      // Expired or revoked: a new token, and the call once more.
      token_.reset();
      if (!renewed) {
        renewed = true;
        continue;
      }
      throw sdk::AuthError("eoffice: " + url + " refused a freshly issued token (HTTP 401): " +
                           "check that client " + settings_.client_id + " may read it");
    }
    if (is_retryable(resp.status)) {
      last_failure = "HTTP " + std::to_string(resp.status);
      host_.metric_add("eoffice_http_retries_total",
                       {{"cause", is_overload(resp.status) ? "overload" : "5xx"}}, 1);
      if (attempt >= settings_.max_attempts) break;
      wait_before_retry(attempt++, &resp, url, last_failure);
      continue;
    }
    return resp;
  }
  throw sdk::TransientError("eoffice: giving up on " + url + " after " +
                            std::to_string(settings_.max_attempts) +
                            " attempts; last failure: " + last_failure);
}

std::string EOfficeSource::diary_url(const Cursor& cursor) const {
  std::string url = settings_.base_url + settings_.diary_path +
                    "?updated_since=" + sdk::percent_encode(cursor.key.updated_at) +
                    "&page_size=" + std::to_string(settings_.page_size);
  if (cursor.page_token) url += "&page_token=" + sdk::percent_encode(*cursor.page_token);
  return url;
}

void EOfficeSource::pull(std::optional<std::string_view> cursor_text, sdk::Page& page) {
  pull_deadline_ms_ = host_.now_unix_ms() + settings_.pull_budget_ms;
  Cursor cursor = cursor_text ? Cursor::decode(*cursor_text)
                              : Cursor{{settings_.updated_since, ""}, std::nullopt};
  if (!cursor.page_token) {
    walk_pages_ = 0;
    walk_items_ = 0;
    walk_guard_.restart();
  }
  bool restarted = false;
  int unreadable = 0;
  while (true) {
    const std::string url = diary_url(cursor);
    const sdk::HttpResponse resp = get(url);
    if (resp.status == 400 && cursor.page_token &&
        resp.body.find("invalid_page_token") != std::string::npos) {
      if (restarted) {
        throw sdk::TransientError("eoffice: " + url + " refused a page token twice in one pull");
      }
      // Page tokens live ten minutes: walk again from the cursor, which
      // skips what was handed over already.
      host_.info("eoffice: page token expired; starting again from " + cursor.key.updated_at +
                 " (id " + cursor.key.id + ")");
      host_.metric_add("eoffice_page_token_restarts_total", 1);
      cursor.page_token.reset();
      walk_guard_.restart();
      restarted = true;
      continue;
    }
    if (resp.status != 200) {
      throw sdk::ConfigError("eoffice: " + url + " answered HTTP " + std::to_string(resp.status) +
                             ": " + excerpt(resp.body) + " (check base_url and diary_path)");
    }
    PageSummary summary;
    try {
      summary = normalizer_.normalize_page(resp.body, cursor.key, page,
                                           static_cast<std::size_t>(settings_.page_size));
    } catch (const PageParseError& e) {
      ++unreadable;
      host_.warn("eoffice: page from " + url + " is unreadable: " + e.what());
      if (unreadable >= settings_.max_attempts) {
        throw sdk::DataError("eoffice: page from " + url + " is unreadable at byte " +
                             std::to_string(e.offset()) + " (" + e.what() + ") after " +
                             std::to_string(unreadable) + " attempts; cursor not moved");
      }
      wait_before_retry(unreadable, nullptr, url, e.what());
      continue;
    }
    walk_guard_.next(url, summary.next_page_token,
                     summary.last_key && compare_keys(*summary.last_key, cursor.key) > 0);
    const Cursor next{summary.last_key.value_or(cursor.key), summary.next_page_token};
    page.set_cursor(next.encode());
    page.set_caught_up(!summary.next_page_token);
    ++walk_pages_;
    walk_items_ += summary.items;
    std::string progress = "eoffice: page " + std::to_string(walk_pages_) + ", " +
                           std::to_string(walk_items_) + " items, up to " + next.key.updated_at;
    if (!summary.next_page_token) progress += ", caught up";
    if (summary.server_time) progress += " (server time " + *summary.server_time + ")";
    page.set_progress(std::move(progress));
    host_.metric_add("eoffice_items_total", {{"outcome", "record"}},
                     static_cast<double>(page.records().size()));
    host_.metric_add("eoffice_items_total", {{"outcome", "rejected"}},
                     static_cast<double>(page.rejected().size()));
    host_.metric_add("eoffice_items_total", {{"outcome", "skipped"}},
                     static_cast<double>(summary.skipped));
    return;
  }
}

std::optional<std::vector<sdk::StaffEntry>> EOfficeSource::list_staff() {
  pull_deadline_ms_ = host_.now_unix_ms() + settings_.pull_budget_ms;
  std::vector<sdk::StaffEntry> staff;
  std::optional<std::string> page_token;
  WalkGuard guard(static_cast<std::size_t>(settings_.max_stalled_pages));
  int restarts = 0;
  std::size_t skipped = 0;
  while (true) {
    std::string url = settings_.base_url + settings_.staff_path +
                      "?page_size=" + std::to_string(settings_.page_size);
    if (page_token) url += "&page_token=" + sdk::percent_encode(*page_token);
    const sdk::HttpResponse resp = get(url);
    if (resp.status == 400 && page_token &&
        resp.body.find("invalid_page_token") != std::string::npos) {
      if (++restarts > 3) {
        throw sdk::TransientError("eoffice: " + url + ": page tokens keep expiring");
      }
      staff.clear();
      page_token.reset();
      guard.restart();
      continue;
    }
    if (resp.status != 200) {
      throw sdk::ConfigError("eoffice: " + url + " answered HTTP " + std::to_string(resp.status) +
                             ": " + excerpt(resp.body) + " (check base_url and staff_path)");
    }
    // Bounded before it is parsed into values, as a diary page is.
    const json::parse_options options;
    const sdk::JsonShape shape = sdk::inspect_json(
        resp.body, options,
        {static_cast<std::size_t>(settings_.page_size), Normalizer::kMaxInnerArray});
    if (shape.too_long) {
      throw sdk::DataError("eoffice: staff page from " + url + " holds a list longer than " +
                           std::to_string(settings_.page_size) + ", the page size asked for");
    }
    boost::system::error_code ec;
    const json::value v = json::parse(resp.body, ec);
    const json::value* items =
        (!ec && v.is_object()) ? v.get_object().if_contains("items") : nullptr;
    if (!items || !items->is_array()) {
      throw sdk::DataError("eoffice: staff page from " + url + " is unreadable" +
                           (ec ? ": " + ec.message() : std::string(": no \"items\" list")));
    }
    for (const auto& item : items->get_array()) {
      const json::object* obj = item.if_object();
      const auto text = [&](std::string_view key) -> std::optional<std::string> {
        const json::value* f = obj ? obj->if_contains(key) : nullptr;
        if (!f || !f->is_string() || f->get_string().empty()) return std::nullopt;
        return std::string(f->get_string());
      };
      const auto code = text("staff_code");
      const auto agency = text("agency_code");
      if (!code || !agency) {
        ++skipped;
        host_.warn("eoffice: staff item without staff_code or agency_code skipped: " +
                   excerpt(json::serialize(item)));
        continue;
      }
      sdk::StaffEntry entry;
      entry.staff_code = *code;
      entry.agency_code = *agency;
      entry.full_name = text("full_name").value_or("");
      if (const auto* pos = obj->if_contains("position"); pos && pos->is_object()) {
        if (const auto* leader = pos->get_object().if_contains("leader");
            leader && leader->is_bool()) {
          entry.leader = leader->get_bool();
        }
      }
      if (const auto* active = obj->if_contains("active"); active && active->is_bool()) {
        entry.active = active->get_bool();
      }
      staff.push_back(std::move(entry));
    }
    const json::value* next = v.get_object().if_contains("next_page_token");
    if (!next || !next->is_string() || next->get_string().empty()) break;
    page_token = std::string(next->get_string());
    guard.next(url, page_token, !items->get_array().empty());
  }
  host_.info("eoffice: staff list has " + std::to_string(staff.size()) + " entries" +
             (skipped ? " (" + std::to_string(skipped) + " unreadable skipped)" : std::string()));
  return staff;
}

}  // namespace kpihub::eoffice
