#include "provincial_sink.hpp"

#include "retry_after.hpp"

#include <boost/archive/iterators/base64_from_binary.hpp>
#include <boost/archive/iterators/transform_width.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <utility>

namespace kpihub::provincial {
namespace {

constexpr std::size_t kMaxQuotedBodyChars = 300;

std::string strip_trailing_slash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

std::string require_path(sdk::Settings& settings, std::string_view key, std::string fallback) {
  std::string path = settings.string(key, std::move(fallback));
  if (path.empty() || path.front() != '/') {
    throw sdk::ConfigError(settings.path() + "." + std::string(key) + ": \"" + path +
                           "\" must start with '/'");
  }
  return path;
}

std::string base64(std::string_view bytes) {
  using namespace boost::archive::iterators;
  using Encoder = base64_from_binary<transform_width<std::string_view::const_iterator, 6, 8>>;
  std::string out(Encoder(bytes.begin()), Encoder(bytes.end()));
  out.append((3 - bytes.size() % 3) % 3, '=');
  return out;
}

std::string json_string(std::string_view text) {
  return boost::json::serialize(boost::json::string(text));
}

// The receiver's {"error": "..."} text, or the start of whatever it sent.
std::string error_text(const sdk::HttpResponse& response) {
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(response.body, ec);
  if (!ec && parsed.is_object()) {
    if (const auto* error = parsed.as_object().if_contains("error"); error && error->is_string()) {
      return std::string(error->as_string());
    }
  }
  if (response.body.size() <= kMaxQuotedBodyChars) return response.body;
  return response.body.substr(0, kMaxQuotedBodyChars) + "...";
}

bool is_invalid_token_challenge(const sdk::HttpResponse& response) {
  const auto challenge = response.header("WWW-Authenticate");
  return challenge && challenge->find("invalid_token") != std::string::npos;
}

std::string describe(const sdk::HttpResponse& response, const std::string& url) {
  std::string text = "HTTP " + std::to_string(response.status) + " from " + url;
  const std::string error = error_text(response);
  if (!error.empty()) text += ": " + error;
  return text;
}

}  // namespace

ProvincialSettings read_settings(const sdk::Host& host, sdk::Settings& settings) {
  ProvincialSettings out;
  out.base_url = strip_trailing_slash(settings.string("base_url"));
  if (out.base_url.rfind("http://", 0) != 0 && out.base_url.rfind("https://", 0) != 0) {
    throw sdk::ConfigError(settings.path() + ".base_url: \"" + out.base_url +
                           "\" must start with http:// or https://");
  }
  out.client_id = settings.string("client_id");
  const auto secret_file = settings.optional_string("client_secret_file");
  const auto secret_env = settings.optional_string("client_secret_env");
  if (secret_file.has_value() == secret_env.has_value()) {
    throw sdk::ConfigError(settings.path() +
                           ": set exactly one of client_secret_file and client_secret_env");
  }
  out.client_secret = host.secret(secret_file ? "file:" + *secret_file : "env:" + *secret_env);
  // Secret files usually end with a newline the editor added.
  while (!out.client_secret.empty() &&
         (out.client_secret.back() == '\n' || out.client_secret.back() == '\r')) {
    out.client_secret.pop_back();
  }
  if (out.client_secret.empty()) {
    throw sdk::ConfigError(settings.path() + ": the client secret " +
                           (secret_file ? "file " + *secret_file : "variable " + *secret_env) +
                           " is empty");
  }
  out.token_path = require_path(settings, "token_path", out.token_path);
  out.records_path = require_path(settings, "records_path", out.records_path);
  out.months_path = require_path(settings, "months_path", out.months_path);

  const std::string auth = settings.string("auth", std::string("form"));
  if (auth != "form" && auth != "basic") {
    throw sdk::ConfigError(settings.path() + ".auth: \"" + auth +
                           "\" is not \"form\" or \"basic\"");
  }
  out.basic_auth = auth == "basic";

  out.http.ca_file = settings.optional_string("ca_file");
  out.http.client_cert_file = settings.optional_string("client_cert_file");
  out.http.client_key_file = settings.optional_string("client_key_file");
  if (out.http.client_cert_file.has_value() != out.http.client_key_file.has_value()) {
    throw sdk::ConfigError(settings.path() +
                           ": client_cert_file and client_key_file go together (mutual TLS)");
  }
  out.http.insecure_skip_verify = settings.boolean("insecure_skip_verify", false);
  out.http.request_timeout_ms =
      static_cast<unsigned>(settings.integer("request_timeout_ms", 30000, 100, 600000));
  if (out.http.insecure_skip_verify) {
    host.warn(settings.path() +
              ".insecure_skip_verify is on: the provincial server's certificate is NOT checked");
  }
  return out;
}

// What one deliver() call has decided so far.
struct ProvincialSink::DeliveryState {
  std::vector<std::optional<sdk::ItemResult>> results;
  bool postponed = false;  // once set, nothing more is sent in this call
  std::string retry_message;
  uint32_t retry_after_ms = 0;
  // The batch's requests answered for good, in this call or an earlier
  // attempt; written as each answer arrives, so an exception thrown later in
  // the call does not lose them.
  SettledRequests::ByRequestId* settled = nullptr;
  std::size_t reused_requests = 0;  // answered in an earlier attempt, not resent

  void decide(std::size_t item, kpihub_item_outcome outcome, std::string code,
              std::string message) {
    results[item] = sdk::ItemResult{outcome, std::move(code), std::move(message)};
  }
  // Keeps the items' decided results as the request's final answer.
  void settle(const std::string& request_id, std::size_t body_hash,
              std::span<const std::size_t> items) {
    SettledRequest& request = (*settled)[request_id];
    request = SettledRequest{body_hash, false, {}};
    request.results.reserve(items.size());
    for (const std::size_t i : items) request.results.push_back(*results[i]);
  }
  void settle_as_split(const std::string& request_id, std::size_t body_hash) {
    (*settled)[request_id] = SettledRequest{body_hash, true, {}};
  }
  void postpone(std::string message, uint32_t after_ms) {
    if (!postponed) retry_message = std::move(message);
    postponed = true;
    retry_after_ms = std::max(retry_after_ms, after_ms);
  }
};

namespace {
// Raised while fetching a token when the token endpoint is overloaded or
// failing: the batch waits, it is not the operator's problem (yet).
struct PostponeDelivery {
  std::string message;
  uint32_t retry_after_ms = 0;
};
}  // namespace

ProvincialSink::ProvincialSink(sdk::Host& host, sdk::Settings& settings)
    : host_(host),
      settings_(read_settings(host, settings)),
      http_(host.http_client(settings_.http)) {
  // Every series an alert may watch exists at 0 from the start.
  host_.declare_counter("kpihub_provincial_items_total",
                        "Batch items answered by the receiver, by outcome (delivered, rejected, "
                        "retry)");
  host_.declare_counter("kpihub_provincial_requests_total",
                        "Requests to the receiver, by HTTP status (transport_error: no answer)");
  host_.declare_counter("kpihub_provincial_requests_reused_total",
                        "Requests not sent again because an earlier attempt of the batch had "
                        "their answer");
  host_.declare_counter("kpihub_provincial_token_fetches_total",
                        "OAuth2 tokens fetched from the receiver");
  host_.declare_gauge("kpihub_provincial_remembered_batches",
                      "Batches whose answered requests the sink keeps for their next attempt");
  for (const char* outcome : {"delivered", "rejected", "retry"}) {
    host_.metric_add("kpihub_provincial_items_total", {{"outcome", outcome}}, 0);
  }
  host_.metric_add("kpihub_provincial_requests_total", {{"status", "transport_error"}}, 0);
  host_.metric_add("kpihub_provincial_requests_reused_total", 0);
  host_.metric_add("kpihub_provincial_token_fetches_total", 0);
  host_.metric_add("kpihub_provincial_remembered_batches", 0);
}

sdk::Delivery ProvincialSink::deliver(const sdk::Batch& batch) {
  std::lock_guard lock(deliver_mutex_);
  const std::string batch_id(batch.batch_id);
  DeliveryState state;
  state.results.resize(batch.items.size());
  // The answers are kept in memory only. After a restart the whole batch is
  // resent, which is safe: the same keys carry the same bytes, and the
  // receiver replays the answers it stored. A first attempt never trusts
  // leftovers of an earlier batch that had the same id.
  {
    const std::size_t remembered_before = settled_.batch_count();
    if (batch.attempt <= 1) settled_.forget(batch_id);
    state.settled = &settled_.of_batch(batch_id);
    report_remembered_batches(remembered_before);
  }

  std::vector<std::size_t> records;
  std::vector<std::size_t> months;
  for (std::size_t i = 0; i < batch.items.size(); ++i) {
    (batch.items[i].kind == KPIHUB_ITEM_RECORD ? records : months).push_back(i);
  }
  // A mixed batch becomes two requests; their ids are derived from the batch
  // id so that every retry of the batch sends the same two keys.
  const bool mixed = !records.empty() && !months.empty();
  if (!records.empty()) {
    send(batch, Endpoint::records, mixed ? batch_id + ":records" : batch_id, records, state);
  }
  if (!months.empty()) {
    send(batch, Endpoint::months, mixed ? batch_id + ":months" : batch_id, months, state);
  }

  sdk::Delivery delivery;
  delivery.results.reserve(batch.items.size());
  std::size_t delivered = 0, rejected = 0, retry = 0;
  for (auto& result : state.results) {
    if (!result) result = sdk::ItemResult{KPIHUB_ITEM_RETRY, "", state.retry_message};
    switch (result->outcome) {
      case KPIHUB_ITEM_DELIVERED:
        ++delivered;
        break;
      case KPIHUB_ITEM_REJECTED:
        ++rejected;
        break;
      case KPIHUB_ITEM_RETRY:
        ++retry;
        break;
    }
    delivery.results.push_back(std::move(*result));
  }
  delivery.retry_after_ms = retry > 0 ? state.retry_after_ms : 0;
  host_.metric_add("kpihub_provincial_items_total", {{"outcome", "delivered"}},
                   static_cast<double>(delivered));
  host_.metric_add("kpihub_provincial_items_total", {{"outcome", "rejected"}},
                   static_cast<double>(rejected));
  host_.metric_add("kpihub_provincial_items_total", {{"outcome", "retry"}},
                   static_cast<double>(retry));
  if (state.reused_requests > 0) {
    host_.metric_add("kpihub_provincial_requests_reused_total",
                     static_cast<double>(state.reused_requests));
    host_.info("batch " + batch_id + ", attempt " + std::to_string(batch.attempt) + ": " +
               std::to_string(state.reused_requests) +
               " request(s) answered in an earlier attempt, not resent");
  }
  if (retry > 0) {
    host_.warn("batch " + batch_id + ": " + std::to_string(retry) + " item(s) to retry after " +
               std::to_string(delivery.retry_after_ms) + " ms: " + state.retry_message);
  } else {
    // Nothing of it will be sent again.
    const std::size_t remembered_before = settled_.batch_count();
    settled_.forget(batch_id);
    report_remembered_batches(remembered_before);
  }
  return delivery;
}

void ProvincialSink::report_remembered_batches(std::size_t count_before) {
  const auto now = static_cast<double>(settled_.batch_count());
  const auto before = static_cast<double>(count_before);
  if (now != before) host_.metric_add("kpihub_provincial_remembered_batches", now - before);
}

std::string ProvincialSink::build_body(const sdk::Batch& batch, Endpoint endpoint,
                                       const std::string& request_id,
                                       std::span<const std::size_t> items) const {
  // Spliced, not re-serialized: the items are the host's stored JSON text, so
  // the same batch gives the same bytes on every retry, which the receiver's
  // idempotency check depends on.
  std::size_t size = 96 + batch.hub_id.size() + request_id.size();
  for (const std::size_t i : items) size += batch.items[i].json.size() + 1;
  std::string body;
  body.reserve(size);
  body += "{\"hub_id\":";
  body += json_string(batch.hub_id);
  body += ",\"batch_id\":";
  body += json_string(request_id);
  const auto append_array = [&](std::string_view name, auto wanted) {
    body += ",\"";
    body += name;
    body += "\":[";
    bool first = true;
    for (const std::size_t i : items) {
      if (!wanted(batch.items[i].kind)) continue;
      if (!first) body += ',';
      first = false;
      body += batch.items[i].json;
    }
    body += ']';
  };
  if (endpoint == Endpoint::records) {
    append_array("records", [](kpihub_item_kind) { return true; });
  } else {
    append_array("staff_months", [](kpihub_item_kind k) { return k == KPIHUB_ITEM_STAFF_MONTH; });
    append_array("agency_months", [](kpihub_item_kind k) { return k == KPIHUB_ITEM_AGENCY_MONTH; });
  }
  body += '}';
  return body;
}

void ProvincialSink::send(const sdk::Batch& batch, Endpoint endpoint, const std::string& request_id,
                          std::span<const std::size_t> items, DeliveryState& state) {
  if (items.empty()) return;
  const auto earlier = state.settled->find(request_id);
  const bool answered_earlier = earlier != state.settled->end();
  if (state.postponed && !answered_earlier) return;
  const std::string url =
      settings_.base_url +
      (endpoint == Endpoint::records ? settings_.records_path : settings_.months_path);
  const std::string body = build_body(batch, endpoint, request_id, items);
  const std::size_t body_hash = std::hash<std::string>{}(body);
  if (answered_earlier && earlier->second.body_hash == body_hash &&
      (earlier->second.split || earlier->second.results.size() == items.size())) {
    // Used even after a postponement in this call: nothing is sent, so no
    // later request overtakes an earlier one.
    const SettledRequest& answer = earlier->second;
    if (answer.split) {
      send_halves(batch, endpoint, request_id, items, state);
      return;
    }
    for (std::size_t n = 0; n < items.size(); ++n) state.results[items[n]] = answer.results[n];
    ++state.reused_requests;
    return;
  }
  if (state.postponed) return;

  sdk::HttpResponse response;
  try {
    response = post_with_token(url, request_id, body);
  } catch (const PostponeDelivery& postpone) {
    state.postpone(postpone.message, postpone.retry_after_ms);
    return;
  } catch (const sdk::Error& error) {
    if (error.status() != KPIHUB_ERR_TRANSIENT) throw;
    host_.metric_add("kpihub_provincial_requests_total", {{"status", "transport_error"}}, 1);
    state.postpone(url + ": " + error.what(), 0);
    return;
  }
  host_.metric_add("kpihub_provincial_requests_total",
                   {{"status", std::to_string(response.status)}}, 1);

  const auto split = [&](int status) {
    if (items.size() == 1) return false;
    host_.info("batch " + request_id + ": HTTP " + std::to_string(status) + " for " +
               std::to_string(items.size()) + " items, sending it in two halves");
    state.settle_as_split(request_id, body_hash);
    send_halves(batch, endpoint, request_id, items, state);
    return true;
  };

  const int status = response.status;
  if (status >= 200 && status < 300) {
    std::map<std::string, std::pair<std::string, std::string>, std::less<>> refused;
    boost::system::error_code ec;
    const boost::json::value answer = boost::json::parse(response.body, ec);
    const boost::json::array* rejected = nullptr;
    if (!ec && answer.is_object()) {
      if (const auto* r = answer.as_object().if_contains("rejected"); r && r->is_array()) {
        rejected = &r->as_array();
      }
    }
    if (rejected == nullptr) {
      if (!ec && answer.is_object() && !answer.as_object().contains("rejected")) {
        // No "rejected" list simply means nothing was refused.
      } else {
        host_.warn(url + ": HTTP " + std::to_string(status) +
                   " with an answer that is not the documented object; the items count as "
                   "delivered because the status says they were stored");
      }
    } else {
      for (const auto& entry : *rejected) {
        if (!entry.is_object()) continue;
        const auto& o = entry.as_object();
        const auto text = [&](std::string_view key) {
          const auto* v = o.if_contains(key);
          return v && v->is_string() ? std::string(v->as_string()) : std::string();
        };
        refused[text("record_id")] = {text("code"), text("message")};
      }
    }
    for (const std::size_t i : items) {
      const auto found = refused.find(batch.items[i].key);
      if (found == refused.end()) {
        state.decide(i, KPIHUB_ITEM_DELIVERED, "", "");
      } else {
        const auto& [code, message] = found->second;
        state.decide(i, KPIHUB_ITEM_REJECTED, code.empty() ? "rejected" : code,
                     message.empty() ? "refused by " + url : message);
      }
    }
    state.settle(request_id, body_hash, items);
    return;
  }
  switch (status) {
    case 409:
      host_.error("batch " + request_id + ": HTTP 409 from " + url +
                  ": the receiver holds this Idempotency-Key with a different body");
      for (const std::size_t i : items) {
        state.decide(i, KPIHUB_ITEM_REJECTED, "idempotency_conflict",
                     "the receiver already holds Idempotency-Key " + request_id +
                         " with a different body (HTTP 409 from " + url +
                         "): a client bug, a batch must never change once sent; alert the hub's "
                         "maintainers");
      }
      state.settle(request_id, body_hash, items);
      return;
    case 400:
      if (split(status)) return;
      state.decide(items.front(), KPIHUB_ITEM_REJECTED, "bad_request", describe(response, url));
      state.settle(request_id, body_hash, items);
      return;
    case 413:
      if (split(status)) return;
      state.decide(items.front(), KPIHUB_ITEM_REJECTED, "too_large",
                   "the item alone makes a body of " + std::to_string(body.size()) +
                       " bytes, over the receiver's limit (HTTP 413 from " + url + ")");
      state.settle(request_id, body_hash, items);
      return;
    case 429:
    case 503: {
      const auto header = response.header("Retry-After");
      const auto wait = header ? parse_retry_after_ms(*header, host_.now_unix_ms()) : std::nullopt;
      state.postpone(describe(response, url) + (header ? " (Retry-After: " + *header + ")" : ""),
                     wait.value_or(0));
      return;
    }
    case 401:
    case 403:
      throw sdk::AuthError(describe(response, url) +
                           " although a fresh access token was sent; check that client_id " +
                           settings_.client_id + " may post to this endpoint");
    case 404:
    case 405:
      throw sdk::ConfigError(describe(response, url) + "; check base_url and " +
                             (endpoint == Endpoint::records ? "records_path" : "months_path"));
    default:
      break;
  }
  if (status == 408 || status >= 500) {
    state.postpone(describe(response, url), 0);
    return;
  }
  // Any other 4xx: the receiver refuses these items for good, and a retry
  // would get the same answer.
  for (const std::size_t i : items) {
    state.decide(i, KPIHUB_ITEM_REJECTED, "http_" + std::to_string(status),
                 describe(response, url));
  }
  state.settle(request_id, body_hash, items);
}

void ProvincialSink::send_halves(const sdk::Batch& batch, Endpoint endpoint,
                                 const std::string& request_id, std::span<const std::size_t> items,
                                 DeliveryState& state) {
  const std::size_t half = items.size() / 2;
  send(batch, endpoint, request_id + "/0", items.first(half), state);
  send(batch, endpoint, request_id + "/1", items.subspan(half), state);
}

sdk::HttpResponse ProvincialSink::post_with_token(const std::string& url,
                                                  const std::string& request_id,
                                                  const std::string& body) {
  const auto post = [&](const std::string& token) {
    return http_->request("POST", url,
                          {{"Authorization", "Bearer " + token},
                           {"Content-Type", "application/json"},
                           {"Idempotency-Key", request_id}},
                          body);
  };
  sdk::HttpResponse response = post(access_token());
  if (response.status == 401 && is_invalid_token_challenge(response)) {
    // Expired or revoked before our own clock said so: one fresh token, once.
    host_.info(url + ": access token refused (invalid_token), fetching a new one");
    token_.reset();
    response = post(access_token());
  }
  return response;
}

std::string ProvincialSink::access_token() {
  if (!token_ || host_.now_unix_ms() >= token_->renew_at_unix_ms) fetch_token();
  return token_->value;
}

void ProvincialSink::fetch_token() {
  const std::string url = settings_.base_url + settings_.token_path;
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
  std::string form = "grant_type=client_credentials";
  if (settings_.basic_auth) {
    headers.emplace_back("Authorization",
                         "Basic " + base64(sdk::percent_encode(settings_.client_id) + ":" +
                                           sdk::percent_encode(settings_.client_secret)));
  } else {
    form += "&client_id=" + sdk::percent_encode(settings_.client_id) +
            "&client_secret=" + sdk::percent_encode(settings_.client_secret);
  }
  sdk::HttpResponse response;
  try {
    response = http_->request("POST", url, headers, form);
  } catch (const sdk::Error& error) {
    if (error.status() != KPIHUB_ERR_TRANSIENT) throw;
    throw PostponeDelivery{url + ": " + error.what(), 0};
  }
  const int status = response.status;
  if (status == 401 ||
      (status == 400 && error_text(response).find("client") != std::string::npos)) {
    throw sdk::AuthError(url + " refused the client credentials (" + describe(response, url) +
                         "); check client_id \"" + settings_.client_id +
                         "\" and the client secret (client_secret_file/client_secret_env)");
  }
  if (status == 429 || status == 503 || status == 408 || status >= 500) {
    const auto header = response.header("Retry-After");
    const auto wait = header ? parse_retry_after_ms(*header, host_.now_unix_ms()) : std::nullopt;
    throw PostponeDelivery{"token endpoint: " + describe(response, url), wait.value_or(0)};
  }
  if (status != 200) {
    throw sdk::ConfigError("token endpoint " + describe(response, url) +
                           "; check base_url and token_path");
  }
  std::optional<sdk::AccessToken> token =
      sdk::read_token_answer(response.body, host_.now_unix_ms());
  if (!token) {
    throw sdk::ConfigError(url + ": HTTP 200 without an access_token in the answer; is " + url +
                           " an OAuth2 token endpoint?");
  }
  host_.metric_add("kpihub_provincial_token_fetches_total", 1);
  host_.info(url + ": new access token, valid for " + std::to_string(token->expires_in_s) + " s");
  token_ = std::move(*token);
}

}  // namespace kpihub::provincial
