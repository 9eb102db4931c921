#include <kpihub/sim/province_receiver.hpp>

#include <Poco/Base64Decoder.h>
#include <Poco/DigestEngine.h>
#include <Poco/UUIDGenerator.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <variant>

namespace kpihub::sim::province {
namespace {

namespace json = boost::json;

constexpr std::string_view kTokenPath = "/oauth2/token";
constexpr std::string_view kRecordsBatchPath = "/api/v1/kpi/records:batch";
constexpr std::string_view kMonthsBatchPath = "/api/v1/kpi/months:batch";
constexpr std::string_view kRecordPrefix = "/api/v1/kpi/records/";
constexpr std::string_view kStatsPath = "/api/v1/kpi/stats";
constexpr std::string_view kMonthsPath = "/api/v1/kpi/months";
constexpr std::size_t kMaxLiveTokens = 10000;
constexpr int64_t kThroughputWindowSeconds = 10;

net::Reply json_reply(int status, const json::value& body) {
  net::Reply reply;
  reply.status = status;
  reply.headers.emplace_back("Content-Type", "application/json");
  reply.body = json::serialize(body);
  return reply;
}

net::Reply error_reply(int status, const std::string& message) {
  return json_reply(status, json::object{{"error", message}});
}

// OpenSSL's SHA-256 (SHA extensions where the CPU has them): Poco's portable
// one was a twentieth of the receiver's CPU.
std::string sha256_hex(const std::string& text) {
  Poco::DigestEngine::Digest digest(EVP_MAX_MD_SIZE);
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 of a request body failed (OpenSSL)");
  }
  digest.resize(size);
  return Poco::DigestEngine::digestToHex(digest);
}

std::optional<std::string> header(const net::Request& request, const std::string& lower_name) {
  const auto found = request.headers.find(lower_name);
  if (found == request.headers.end()) return std::nullopt;
  return found->second;
}

std::map<std::string, std::string> parse_form(const std::string& body) {
  std::map<std::string, std::string> fields;
  std::size_t start = 0;
  while (start <= body.size()) {
    const std::size_t end = std::min(body.find('&', start), body.size());
    const std::string pair = body.substr(start, end - start);
    const std::size_t eq = pair.find('=');
    if (!pair.empty()) {
      std::string key = net::url_decode(pair.substr(0, eq));
      std::string value = eq == std::string::npos ? "" : pair.substr(eq + 1);
      std::replace(value.begin(), value.end(), '+', ' ');
      fields[std::move(key)] = net::url_decode(value);
    }
    start = end + 1;
  }
  return fields;
}

std::optional<int64_t> as_integer(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v->as_uint64());
  }
  return std::nullopt;
}

std::string string_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// A member of a record as simdjson's DOM holds it: a string member as a view
// into the parsed document ("" if absent or not a string); an integer that
// fits int64 (nullopt if absent, fractional, or out of range).
std::string_view string_member(const simdjson::dom::object& o, std::string_view key) {
  std::string_view value;
  return o[key].get_string().get(value) ? std::string_view() : value;
}

std::optional<int64_t> integer_member(const simdjson::dom::object& o, std::string_view key) {
  int64_t value = 0;
  return o[key].get_int64().get(value) ? std::nullopt : std::optional<int64_t>(value);
}

bool has_member(const simdjson::dom::object& o, std::string_view key) {
  return o[key].error() != simdjson::NO_SUCH_FIELD;
}

// The text of each object in the batch's "records" array as it came, by
// position (views into `body`; "" where an item is not an object): what the
// store keeps of a record, without serializing it again. simdjson's
// On-Demand API finds the texts; the body was validated whole before.
std::vector<std::string_view> record_texts(const simdjson::padded_string& body, std::size_t count) {
  std::vector<std::string_view> texts(count);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document document;
  simdjson::ondemand::array records;
  if (parser.iterate(body).get(document) || document["records"].get_array().get(records)) {
    return texts;
  }
  std::size_t index = 0;
  for (auto item : records) {
    simdjson::ondemand::object record;
    std::string_view text;
    if (index < count && !item.get_object().get(record) && !record.raw_json().get(text)) {
      // The text runs to the next token: without the whitespace before it.
      texts[index] = text.substr(0, text.find_last_not_of(" \t\n\r") + 1);
    }
    ++index;
  }
  return texts;
}

bool is_month(const std::string& m) {
  return m.size() == 7 && m[4] == '-' &&
         std::all_of(m.begin(), m.begin() + 4, [](char c) { return c >= '0' && c <= '9'; }) &&
         ((m[5] == '0' && m[6] >= '1' && m[6] <= '9') ||
          (m[5] == '1' && m[6] >= '0' && m[6] <= '2'));
}

struct Rejection {
  std::string record_id;
  std::string code;
  std::string message;
};

// The parts of a batch body common to both endpoints: an object with hub_id
// and batch_id strings. nullopt with the reason otherwise. The document lives
// in `arena` (one allocation per block, not per string, object and array),
// which is given back all at once: the caller keeps it while it uses the
// object, which then has nothing to free.
std::variant<json::object, std::string> parse_batch(const std::string& body,
                                                    json::monotonic_resource& arena) {
  json::error_code ec;
  json::value parsed = json::parse(body, ec, &arena);
  if (ec) return "the body is not valid JSON: " + ec.message();
  if (!parsed.is_object()) return std::string("the body is not a JSON object");
  json::object& batch = parsed.as_object();
  for (const char* key : {"hub_id", "batch_id"}) {
    const auto* v = batch.if_contains(key);
    if (v == nullptr || !v->is_string() || v->as_string().empty()) {
      return std::string("the batch has no \"") + key + "\" string";
    }
  }
  return std::move(batch);
}

std::string answer_text(const ApplyCounts& counts, const std::vector<Rejection>& rejected) {
  json::array list;
  for (const auto& r : rejected) {
    list.push_back(
        json::object{{"record_id", r.record_id}, {"code", r.code}, {"message", r.message}});
  }
  return json::serialize(json::object{
      {"accepted", counts.accepted}, {"duplicates", counts.duplicates}, {"rejected", list}});
}

}  // namespace

Receiver::Receiver(ReceiverOptions options)
    : options_(std::move(options)), store_(options_.db_path), random_(options_.seed) {
  if (!options_.now_unix_ms) {
    options_.now_unix_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
}

Receiver::~Receiver() {
  stop();
}

void Receiver::start() {
  net::ServerOptions server_options;
  server_options.address = options_.address;
  server_options.port = options_.port;
  server_options.tls_cert_file = options_.tls_cert_file;
  server_options.tls_key_file = options_.tls_key_file;
  server_options.client_ca_file = options_.client_ca_file;
  server_options.threads = options_.threads;
  server_options.max_body_bytes = options_.max_body_bytes;
  server_ = std::make_unique<net::HttpServer>(
      server_options, [this](const net::Request& request) { return handle(request); });
  server_->start();
}

void Receiver::stop() {
  if (server_) server_->stop();
}

uint16_t Receiver::port() const {
  return server_ ? server_->port() : 0;
}

std::string Receiver::base_url() const {
  return std::string(options_.tls_cert_file ? "https" : "http") + "://" + options_.address + ":" +
         std::to_string(port());
}

int64_t Receiver::now_ms() const {
  return options_.now_unix_ms();
}

void Receiver::set_faults(const Faults& faults) {
  std::lock_guard lock(config_mutex_);
  options_.faults = faults;
}

void Receiver::set_poison(std::set<std::string> record_ids) {
  std::lock_guard lock(config_mutex_);
  options_.poison_record_ids = std::move(record_ids);
}

void Receiver::set_observer(std::function<void(const net::Request&)> observer) {
  std::lock_guard lock(config_mutex_);
  observer_ = std::move(observer);
}

void Receiver::revoke_tokens() {
  std::lock_guard lock(token_mutex_);
  tokens_.clear();
}

net::Reply Receiver::handle(const net::Request& request) {
  {
    std::function<void(const net::Request&)> observer;
    {
      std::lock_guard lock(config_mutex_);
      observer = observer_;
    }
    if (observer) observer(request);
  }
  const std::string& path = request.path;
  const bool post = request.method == "POST";
  const bool get = request.method == "GET";

  if (path == kTokenPath) {
    return post ? token_endpoint(request) : error_reply(405, "use POST for " + path);
  }
  if (path == kRecordsBatchPath || path == kMonthsBatchPath) {
    if (!post) return error_reply(405, "use POST for " + path);
    FaultDecision fault = injected_fault();
    if (fault.reply) return *fault.reply;
    net::Reply reply;
    if (auto refused = check_bearer(request)) {
      reply = *refused;
    } else if (request.body.size() > options_.max_body_bytes) {
      reply = error_reply(413, "the body has " + std::to_string(request.body.size()) +
                                   " bytes, over the limit of " +
                                   std::to_string(options_.max_body_bytes));
    } else {
      reply = path == kRecordsBatchPath ? records_batch(request) : months_batch(request);
    }
    // A slow answer still does the work: only the answer is late.
    reply.delay = fault.delay;
    return reply;
  }
  const bool record_path = path.size() > kRecordPrefix.size() && path.starts_with(kRecordPrefix);
  if (record_path || path == kStatsPath || path == kMonthsPath) {
    if (!get) return error_reply(405, "use GET for " + path);
    if (auto refused = check_bearer(request)) return *refused;
    if (record_path) return get_record(path.substr(kRecordPrefix.size()));
    if (path == kStatsPath) return json_reply(200, stats());
    return get_months(request);
  }
  return error_reply(404, "no such endpoint: " + request.method + " " + path);
}

net::Reply Receiver::token_endpoint(const net::Request& request) {
  const auto form = parse_form(request.body);
  const auto field = [&](const std::string& key) {
    const auto found = form.find(key);
    return found == form.end() ? std::string() : found->second;
  };
  if (field("grant_type") != "client_credentials") {
    return json_reply(400,
                      json::object{{"error", "unsupported_grant_type"},
                                   {"error_description", "grant_type must be client_credentials"}});
  }
  std::string id = field("client_id");
  std::string secret = field("client_secret");
  if (const auto authorization = header(request, "authorization");
      authorization && authorization->starts_with("Basic ")) {
    std::istringstream encoded(authorization->substr(6));
    Poco::Base64Decoder decoder(encoded);
    std::string pair((std::istreambuf_iterator<char>(decoder)), std::istreambuf_iterator<char>());
    const std::size_t colon = pair.find(':');
    // RFC 6749 2.3.1: both halves are form-encoded before Base64.
    id = net::url_decode(pair.substr(0, colon));
    secret = colon == std::string::npos ? "" : net::url_decode(pair.substr(colon + 1));
  }
  if (id != options_.client_id || secret != options_.client_secret) {
    net::Reply reply = json_reply(
        401, json::object{{"error", "invalid_client"},
                          {"error_description", "unknown client or wrong client secret"}});
    reply.headers.emplace_back("WWW-Authenticate", "Basic realm=\"kpihub-sim-province\"");
    return reply;
  }
  std::string token;
  {
    std::lock_guard lock(token_mutex_);
    Poco::UUIDGenerator generator;
    token = generator.createRandom().toString() + generator.createRandom().toString();
    const int64_t now = now_ms();
    if (tokens_.size() >= kMaxLiveTokens) {
      std::erase_if(tokens_, [now](const auto& entry) { return entry.second <= now; });
      if (tokens_.size() >= kMaxLiveTokens) tokens_.erase(tokens_.begin());
    }
    tokens_[token] = now + options_.token_ttl_seconds * 1000;
    ++tokens_issued_;
  }
  return json_reply(200, json::object{{"access_token", token},
                                      {"token_type", "Bearer"},
                                      {"expires_in", options_.token_ttl_seconds}});
}

std::optional<net::Reply> Receiver::check_bearer(const net::Request& request) {
  const auto authorization = header(request, "authorization");
  if (!authorization || !authorization->starts_with("Bearer ")) {
    net::Reply reply = error_reply(401, "an Authorization: Bearer token is required");
    reply.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"kpihub-sim-province\"");
    return reply;
  }
  const std::string token = authorization->substr(7);
  std::lock_guard lock(token_mutex_);
  const auto found = tokens_.find(token);
  if (found != tokens_.end() && found->second > now_ms()) return std::nullopt;
  if (found != tokens_.end()) tokens_.erase(found);
  net::Reply reply = error_reply(401, "the access token is expired, revoked or unknown");
  reply.headers.emplace_back("WWW-Authenticate",
                             "Bearer realm=\"kpihub-sim-province\", error=\"invalid_token\", "
                             "error_description=\"the access token expired or is unknown\"");
  return reply;
}

Receiver::FaultDecision Receiver::injected_fault() {
  std::lock_guard lock(config_mutex_);
  const Faults& f = options_.faults;
  std::uniform_real_distribution<double> share(0.0, 1.0);
  const double draw = share(random_);
  std::optional<net::Reply> reply;
  double edge = f.drop;
  if (draw < edge) {
    reply.emplace();
    reply->drop_connection = true;
  } else if (draw < (edge += f.fail_500)) {
    reply = error_reply(500, "injected fault: internal error");
  } else if (draw < (edge += f.fail_503)) {
    reply = error_reply(503, "injected fault: service unavailable");
    reply->headers.emplace_back("Retry-After", std::to_string(f.retry_after_seconds));
  } else if (draw < (edge += f.fail_429)) {
    reply = error_reply(429, "injected fault: too many requests");
    reply->headers.emplace_back("Retry-After", std::to_string(f.retry_after_seconds));
  }
  FaultDecision decision{std::move(reply), std::chrono::milliseconds(0)};
  if (f.slow_share > 0 && share(random_) < f.slow_share) decision.delay = f.slow_delay;
  if (decision.reply || decision.delay.count() > 0) ++faults_injected_;
  return decision;
}

std::optional<net::Reply> Receiver::replay_or_conflict(const std::string& key,
                                                       const std::string& body_sha256) {
  const auto stored = store_.find_answer(key);
  if (!stored) return std::nullopt;
  if (stored->body_sha256 != body_sha256) {
    store_.count_conflict();
    return error_reply(409, "Idempotency-Key " + key + " was used before with a different body");
  }
  store_.count_duplicate_batch();
  net::Reply replay = json_reply(stored->status, json::value());
  replay.body = stored->answer;
  replay.headers.emplace_back("Idempotent-Replayed", "true");
  return replay;
}

net::Reply Receiver::records_batch(const net::Request& request) {
  const auto started = std::chrono::steady_clock::now();
  const auto key = header(request, "idempotency-key");
  if (!key || key->empty()) return error_reply(400, "the Idempotency-Key header is required");
  const std::string body_sha = sha256_hex(request.body);
  if (auto earlier = replay_or_conflict(*key, body_sha)) return *earlier;
  // simdjson's DOM: the whole body validated (UTF-8, every value) as
  // Boost.JSON did, at a fifth of its CPU, the largest part of the
  // receiver's once the store was fast.
  const simdjson::padded_string body(request.body);
  simdjson::dom::parser parser;
  simdjson::dom::element document;
  if (const auto error = parser.parse(body).get(document)) {
    return error_reply(
        400, std::string("the body is not valid JSON: ") + simdjson::error_message(error));
  }
  simdjson::dom::object batch;
  if (document.get_object().get(batch)) {
    return error_reply(400, "the body is not a JSON object");
  }
  for (const char* name : {"hub_id", "batch_id"}) {
    if (string_member(batch, name).empty()) {
      return error_reply(400, std::string("the batch has no \"") + name + "\" string");
    }
  }
  simdjson::dom::array items;
  if (batch["records"].get_array().get(items)) {
    return error_reply(400, "the batch has no \"records\" array");
  }
  std::set<std::string> poison;
  {
    std::lock_guard lock(config_mutex_);
    poison = options_.poison_record_ids;
  }
  std::vector<RecordVersion> versions;
  const std::vector<std::string_view> texts = record_texts(body, items.size());
  std::vector<std::string> minified;  // only should a text not have been found
  std::vector<Rejection> rejected;
  versions.reserve(items.size());
  minified.reserve(items.size());  // never reallocated: versions view into its strings
  std::size_t index = 0;
  for (const simdjson::dom::element item : items) {
    const auto where = [index] { return "records[" + std::to_string(index) + "]"; };
    ++index;
    simdjson::dom::object record;
    if (item.get_object().get(record)) {
      rejected.push_back({where(), "bad_value", where() + " is not a JSON object"});
      continue;
    }
    RecordVersion version;
    version.record_id = string_member(record, "record_id");
    const auto reject = [&](std::string code, std::string message) {
      rejected.push_back({version.record_id.empty() ? where() : std::string(version.record_id),
                          std::move(code), std::move(message)});
    };
    const auto name = [&] { return std::string(version.record_id); };
    if (version.record_id.empty()) {
      reject("missing_field", where() + ": record_id is missing or not a non-empty string");
      continue;
    }
    if (!poison.empty() && poison.count(name())) {
      reject("poison",
             "record " + name() + " is refused by the receiver's --reject-record setting");
      continue;
    }
    const auto revision = integer_member(record, "revision");
    if (!revision || *revision < 0) {
      reject(has_member(record, "revision") ? "bad_value" : "missing_field",
             "record " + name() + ": revision must be a non-negative integer");
      continue;
    }
    simdjson::dom::element retracted;
    const bool has_retracted = !record["retracted"].get(retracted);
    if (has_retracted && !retracted.is_bool() && !retracted.is_null()) {
      reject("bad_value", "record " + name() + ": retracted must be true or false");
      continue;
    }
    simdjson::dom::object scoring;
    const bool has_scoring = has_member(record, "scoring");
    const auto sequence = has_scoring && !record["scoring"].get_object().get(scoring)
                              ? integer_member(scoring, "sequence")
                              : std::nullopt;
    if (!sequence || *sequence < 0) {
      reject(has_scoring ? "bad_value" : "missing_field",
             "record " + name() + ": scoring.sequence must be a non-negative integer");
      continue;
    }
    version.revision = *revision;
    version.sequence = *sequence;
    version.retracted = has_retracted && retracted.is_bool() && bool(retracted);
    if (!version.retracted) {
      if (string_member(record, "staff_code").empty() ||
          string_member(record, "work_date").empty()) {
        reject("missing_field", "record " + name() + ": staff_code and work_date are required");
        continue;
      }
    }
    if (texts[index - 1].empty()) {
      minified.push_back(simdjson::minify(item));
      version.json = minified.back();
    } else {
      version.json = texts[index - 1];
    }
    versions.push_back(version);
  }
  const std::string answer = store_.apply_records(
      *key, body_sha, versions, static_cast<int64_t>(rejected.size()),
      [&](const ApplyCounts& counts) { return answer_text(counts, rejected); });
  note_processed(versions.size() + rejected.size(), std::chrono::steady_clock::now() - started);
  net::Reply reply = json_reply(200, json::value());
  reply.body = answer;
  return reply;
}

net::Reply Receiver::months_batch(const net::Request& request) {
  const auto started = std::chrono::steady_clock::now();
  const auto key = header(request, "idempotency-key");
  if (!key || key->empty()) return error_reply(400, "the Idempotency-Key header is required");
  const std::string body_sha = sha256_hex(request.body);
  if (auto earlier = replay_or_conflict(*key, body_sha)) return *earlier;
  json::monotonic_resource arena(request.body.size() * 2);
  auto parsed = parse_batch(request.body, arena);
  if (auto* reason = std::get_if<std::string>(&parsed)) return error_reply(400, *reason);
  const json::object& batch = std::get<json::object>(parsed);
  const auto* staff = batch.if_contains("staff_months");
  const auto* agency = batch.if_contains("agency_months");
  if ((staff == nullptr && agency == nullptr) || (staff && !staff->is_array()) ||
      (agency && !agency->is_array())) {
    return error_reply(400, "the batch needs a \"staff_months\" and/or an \"agency_months\" array");
  }
  std::vector<MonthVersion> versions;
  std::vector<Rejection> rejected;
  const auto take = [&](const json::value* list, bool is_agency) {
    if (list == nullptr) return;
    const std::string array_name = is_agency ? "agency_months" : "staff_months";
    std::size_t index = 0;
    for (const json::value& item : list->as_array()) {
      const std::string where = array_name + "[" + std::to_string(index++) + "]";
      if (!item.is_object()) {
        rejected.push_back({where, "bad_value", where + " is not a JSON object"});
        continue;
      }
      const json::object& o = item.as_object();
      MonthVersion v;
      v.agency = is_agency;
      v.month = string_field(o, "month");
      v.code = string_field(o, is_agency ? "agency_code" : "staff_code");
      v.agency_code = string_field(o, "agency_code");
      const std::string name =
          std::string(is_agency ? "agency:" : "staff:") + v.month + ":" + v.code;
      if (!is_month(v.month)) {
        rejected.push_back({name, v.month.empty() ? "missing_field" : "bad_value",
                            where + ": month must be YYYY-MM, got \"" + v.month + "\""});
        continue;
      }
      if (v.code.empty()) {
        rejected.push_back(
            {name, "missing_field",
             where + ": " + (is_agency ? "agency_code" : "staff_code") + " is missing or empty"});
        continue;
      }
      const auto revision = as_integer(o.if_contains("revision"));
      if (!revision || *revision < 0) {
        rejected.push_back({name, o.contains("revision") ? "bad_value" : "missing_field",
                            where + ": revision must be a non-negative integer"});
        continue;
      }
      v.revision = *revision;
      v.json = json::serialize(item);
      versions.push_back(std::move(v));
    }
  };
  take(staff, false);
  take(agency, true);
  const std::string answer =
      store_.apply_months(*key, body_sha, versions, static_cast<int64_t>(rejected.size()),
                          [&](const ApplyCounts& counts) { return answer_text(counts, rejected); });
  note_processed(versions.size() + rejected.size(), std::chrono::steady_clock::now() - started);
  net::Reply reply = json_reply(200, json::value());
  reply.body = answer;
  return reply;
}

net::Reply Receiver::get_record(const std::string& record_id) {
  const auto stored = store_.record(record_id);
  if (!stored) return error_reply(404, "no record " + record_id);
  if (stored->retracted) {
    return json_reply(404, json::object{{"error", "record " + record_id + " was withdrawn"},
                                        {"retracted", true},
                                        {"revision", stored->revision}});
  }
  net::Reply reply = json_reply(200, json::value());
  reply.body = stored->json;
  return reply;
}

net::Reply Receiver::get_months(const net::Request& request) {
  const auto param = [&](const std::string& name) {
    const auto found = request.query.find(name);
    return found == request.query.end() ? std::string() : found->second;
  };
  const std::string month = param("month");
  if (!is_month(month)) return error_reply(400, "month=YYYY-MM is required, got \"" + month + "\"");
  const std::string agency_code = param("agency_code");
  json::array staff, agency;
  for (const auto& text : store_.staff_months(month, agency_code))
    staff.push_back(json::parse(text));
  for (const auto& text : store_.agency_months(month, agency_code)) {
    agency.push_back(json::parse(text));
  }
  return json_reply(200, json::object{{"month", month},
                                      {"agency_code", agency_code},
                                      {"staff_months", std::move(staff)},
                                      {"agency_months", std::move(agency)}});
}

void Receiver::note_processed(std::size_t items, std::chrono::steady_clock::duration busy) {
  const int64_t second = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
  std::lock_guard lock(throughput_mutex_);
  items_processed_ += static_cast<int64_t>(items);
  busy_ += busy;
  items_per_second_[second] += static_cast<int64_t>(items);
  while (!items_per_second_.empty() &&
         items_per_second_.begin()->first <= second - kThroughputWindowSeconds) {
    items_per_second_.erase(items_per_second_.begin());
  }
}

boost::json::object Receiver::stats() {
  const StoreCounters c = store_.counters();
  json::object out{
      {"records", c.records},
      {"retracted", c.retracted},
      {"revisions_received", c.revisions_received},
      {"month_revisions_received", c.month_revisions_received},
      {"batches", c.batches},
      {"duplicate_batches", c.duplicate_batches},
      {"conflicts_409", c.conflicts_409},
      {"rejected_items", c.rejected_items},
      {"months", json::object{{"staff", c.staff_months}, {"agency", c.agency_months}}}};
  {
    std::lock_guard lock(token_mutex_);
    out["tokens_issued"] = tokens_issued_;
  }
  out["faults_injected"] = faults_injected_.load();
  const int64_t now_second = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
  std::lock_guard lock(throughput_mutex_);
  int64_t recent = 0;
  for (const auto& [second, items] : items_per_second_) {
    if (second > now_second - kThroughputWindowSeconds) recent += items;
  }
  out["records_per_second_recent"] = static_cast<double>(recent) / kThroughputWindowSeconds;
  // Capacity rather than load: items per second of time spent handling
  // batches. Far above the hub's send rate means the receiver is not the
  // bottleneck.
  const double busy_seconds = std::chrono::duration<double>(busy_).count();
  out["items_processed"] = items_processed_;
  out["records_per_busy_second"] =
      busy_seconds > 0 ? static_cast<double>(items_processed_) / busy_seconds : 0.0;
  return out;
}

std::optional<StoredRecord> Receiver::record(const std::string& record_id) {
  return store_.record(record_id);
}

}  // namespace kpihub::sim::province
