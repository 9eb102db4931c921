// HTTP front of the simulated E-Office: token endpoint, staff list and
// diary feed, with faults drawn from a seeded generator.
#include <kpihub/sim/eoffice_sim.hpp>

#include <openssl/evp.h>
#include <boost/json.hpp>

#include <chrono>
#include <cstdio>

namespace kpihub::sim {

namespace json = boost::json;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

net::Reply json_reply(int status, std::string body) {
  net::Reply r;
  r.status = status;
  r.headers.emplace_back("Content-Type", "application/json; charset=utf-8");
  r.body = std::move(body);
  return r;
}

net::Reply error_reply(int status, const std::string& code) {
  return json_reply(status, json::serialize(json::object{{"error", code}}));
}

std::string hex(const std::string& text) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (const char c : text) {
    out += kHex[static_cast<unsigned char>(c) >> 4];
    out += kHex[static_cast<unsigned char>(c) & 15];
  }
  return out;
}

std::optional<std::string> unhex(const std::string& text) {
  if (text.size() % 2) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    unsigned v = 0;
    if (std::sscanf(text.c_str() + i, "%2x", &v) != 1) return std::nullopt;
    out += static_cast<char>(v);
  }
  return out;
}

std::optional<std::string> base64_decode(const std::string& text) {
  std::string out(text.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n));
  // EVP_DecodeBlock counts padding as zero bytes.
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) out.pop_back();
  return out;
}

std::optional<std::size_t> read_size(const std::map<std::string, std::string>& query,
                                     const std::string& key, std::size_t fallback) {
  const auto it = query.find(key);
  if (it == query.end()) return fallback;
  try {
    std::size_t used = 0;
    const long v = std::stol(it->second, &used);
    if (used != it->second.size() || v < 1 || v > 5000) return std::nullopt;
    return static_cast<std::size_t>(v);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

EOfficeSimulator::EOfficeSimulator(EOfficeSimConfig config, net::ServerOptions server_options)
    : config_(std::move(config)),
      server_options_(std::move(server_options)),
      data_(config_),
      rng_(config_.seed ^ 0x5eed) {}

EOfficeSimulator::~EOfficeSimulator() {
  stop();
}

void EOfficeSimulator::start() {
  server_ = std::make_unique<net::HttpServer>(
      server_options_, [this](const net::Request& request) { return handle(request); });
  server_->start();
  if (config_.live_rate > 0) {
    live_stop_ = false;
    live_thread_ = std::thread([this] { live_loop(); });
  }
}

void EOfficeSimulator::stop() {
  {
    std::lock_guard lock(live_mutex_);
    live_stop_ = true;
  }
  live_cv_.notify_all();
  if (live_thread_.joinable()) live_thread_.join();
  if (server_) server_->stop();
}

uint16_t EOfficeSimulator::port() const {
  return server_ ? server_->port() : 0;
}

std::string EOfficeSimulator::base_url() const {
  return std::string(server_options_.tls_cert_file ? "https" : "http") + "://" +
         server_options_.address + ":" + std::to_string(port());
}

void EOfficeSimulator::live_loop() {
  double owed = 0;
  std::unique_lock lock(live_mutex_);
  while (!live_stop_) {
    live_cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (live_stop_) break;
    owed += config_.live_rate / 10.0;
    const auto count = static_cast<std::size_t>(owed);
    owed -= static_cast<double>(count);
    if (count > 0) data_.add_live(count, now_ms() / 1000);
  }
}

std::optional<net::Reply> EOfficeSimulator::fault() {
  double u = 0;
  {
    std::lock_guard lock(mutex_);
    u = std::uniform_real_distribution<double>(0, 1)(rng_);
  }
  if (u < config_.drop) {
    ++stats_.drops;
    net::Reply r;
    r.drop_connection = true;
    return r;
  }
  u -= config_.drop;
  if (u < config_.fail_5xx) {
    ++stats_.faults_5xx;
    return error_reply(u < config_.fail_5xx / 2 ? 500 : 502, "simulated_failure");
  }
  u -= config_.fail_5xx;
  if (u < config_.fail_429) {
    ++stats_.faults_429;
    net::Reply r = error_reply(u < config_.fail_429 / 2 ? 429 : 503, "overloaded");
    r.headers.emplace_back("Retry-After", std::to_string(config_.retry_after_seconds));
    return r;
  }
  return std::nullopt;
}

bool EOfficeSimulator::authorized(const net::Request& request) {
  const auto header = request.header("authorization");
  if (!header || header->rfind("Bearer ", 0) != 0) return false;
  std::lock_guard lock(mutex_);
  const auto it = tokens_.find(header->substr(7));
  return it != tokens_.end() && it->second > now_ms();
}

net::Reply EOfficeSimulator::handle(const net::Request& request) {
  ++stats_.requests;
  std::chrono::milliseconds delay{0};
  if (config_.slow_share > 0) {
    std::lock_guard lock(mutex_);
    if (std::uniform_real_distribution<double>(0, 1)(rng_) < config_.slow_share) {
      delay = std::chrono::milliseconds(config_.slow_ms);
    }
  }
  net::Reply reply;
  if (request.path == "/oauth2/token" && request.method == "POST") {
    reply = token(request);
  } else if (request.path == "/sim/served" && request.method == "GET") {
    reply = json_reply(200, data_.served_json());
  } else if (request.path == "/api/v1/work-diary" || request.path == "/api/v1/staff") {
    if (auto f = fault()) {
      reply = std::move(*f);
    } else if (!authorized(request)) {
      ++stats_.unauthorized;
      reply = error_reply(401, "invalid_token");
      reply.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    } else if (request.method != "GET") {
      reply = error_reply(405, "method_not_allowed");
    } else {
      reply = request.path == "/api/v1/staff" ? staff(request) : diary(request);
    }
  } else {
    reply = error_reply(404, "not_found");
  }
  reply.delay = delay;
  return reply;
}

net::Reply EOfficeSimulator::token(const net::Request& request) {
  const auto form = net::parse_form(request.body);
  const auto field = [&](const std::string& k) -> std::string {
    const auto it = form.find(k);
    return it == form.end() ? std::string() : it->second;
  };
  if (field("grant_type") != "client_credentials") {
    return error_reply(400, "unsupported_grant_type");
  }
  std::string id = field("client_id");
  std::string secret = field("client_secret");
  if (const auto auth = request.header("authorization"); auth && auth->rfind("Basic ", 0) == 0) {
    if (const auto decoded = base64_decode(auth->substr(6))) {
      const auto colon = decoded->find(':');
      if (colon != std::string::npos) {
        id = net::url_decode(decoded->substr(0, colon));
        secret = net::url_decode(decoded->substr(colon + 1));
      }
    }
  }
  if (id != config_.client_id || secret != config_.client_secret) {
    net::Reply r = error_reply(401, "invalid_client");
    r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"eoffice\"");
    return r;
  }
  ++stats_.tokens;
  std::string access;
  {
    std::lock_guard lock(mutex_);
    const int64_t now = now_ms();
    if (tokens_.size() > 10000)
      std::erase_if(tokens_, [&](const auto& kv) { return kv.second <= now; });
    access = hex(std::to_string(rng_()) + "." + std::to_string(++token_counter_));
    tokens_[access] = now + int64_t{config_.token_ttl_seconds} * 1000;
  }
  return json_reply(200, json::serialize(json::object{{"access_token", access},
                                                      {"token_type", "Bearer"},
                                                      {"expires_in", config_.token_ttl_seconds}}));
}

std::string EOfficeSimulator::make_page_token(const std::string& kind, std::size_t position) {
  const int64_t issued = now_ms();
  const uint64_t tag = (config_.seed * 0x9e3779b97f4a7c15ULL) ^ (position * 31 + issued);
  return hex(kind + "." + std::to_string(issued) + "." + std::to_string(position) + "." +
             std::to_string(tag));
}

std::optional<std::size_t> EOfficeSimulator::read_page_token(const std::string& kind,
                                                             const std::string& token) {
  const auto text = unhex(token);
  if (!text) return std::nullopt;
  long long issued = 0;
  unsigned long long position = 0, tag = 0;
  char k[8] = {0};
  if (std::sscanf(text->c_str(), "%7[a-z].%lld.%llu.%llu", k, &issued, &position, &tag) != 4 ||
      kind != k) {
    return std::nullopt;
  }
  const uint64_t expected =
      (config_.seed * 0x9e3779b97f4a7c15ULL) ^ (position * 31 + static_cast<uint64_t>(issued));
  if (tag != expected) return std::nullopt;
  if (issued + int64_t{config_.page_token_ttl_seconds} * 1000 < now_ms()) return std::nullopt;
  return static_cast<std::size_t>(position);
}

net::Reply EOfficeSimulator::diary(const net::Request& request) {
  const auto page_size = read_size(request.query, "page_size", 500);
  if (!page_size) return error_reply(400, "invalid_page_size");
  std::size_t from = 0;
  if (const auto it = request.query.find("page_token"); it != request.query.end()) {
    const auto position = read_page_token("d", it->second);
    if (!position) {
      ++stats_.expired_page_tokens;
      return error_reply(400, "invalid_page_token");
    }
    from = *position;
  } else if (const auto since = request.query.find("updated_since"); since != request.query.end()) {
    const auto t = parse_time(since->second);
    if (!t) return error_reply(400, "invalid_updated_since");
    from = data_.lower_bound(*t);
  }
  const auto slice = data_.slice(from, *page_size);
  std::string body;
  body.reserve(slice.items.size() * 900 + 128);
  body += "{\"items\":[";
  for (std::size_t i = 0; i < slice.items.size(); ++i) {
    if (i) body += ',';
    body += slice.items[i];
  }
  body += "],\"next_page_token\":";
  body += slice.more ? json::serialize(json::value(make_page_token("d", slice.next))) : "null";
  body += ",\"server_time\":";
  body += json::serialize(json::value(format_local_time(now_ms() / 1000)));
  body += "}";
  return json_reply(200, std::move(body));
}

net::Reply EOfficeSimulator::staff(const net::Request& request) {
  const auto page_size = read_size(request.query, "page_size", 500);
  if (!page_size) return error_reply(400, "invalid_page_size");
  std::size_t from = 0;
  if (const auto it = request.query.find("page_token"); it != request.query.end()) {
    const auto position = read_page_token("s", it->second);
    if (!position) {
      ++stats_.expired_page_tokens;
      return error_reply(400, "invalid_page_token");
    }
    from = *position;
  }
  const auto& all = data_.staff();
  json::array items;
  std::size_t i = from;
  for (; i < all.size() && items.size() < *page_size; ++i) {
    const SimStaff& s = all[i];
    items.push_back(json::object{{"staff_code", s.staff_code},
                                 {"full_name", s.full_name},
                                 {"agency_code", s.agency_code},
                                 {"position", json::object{{"code", s.position_code},
                                                           {"title", s.position_title},
                                                           {"leader", s.leader}}},
                                 {"active", s.active}});
  }
  json::object page{{"items", std::move(items)}};
  page["next_page_token"] = i < all.size() ? json::value(make_page_token("s", i)) : nullptr;
  return json_reply(200, json::serialize(page));
}

}  // namespace kpihub::sim
