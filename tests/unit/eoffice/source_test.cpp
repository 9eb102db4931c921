// The E-Office adapter against the in-process simulator over real HTTP(S),
// through the plugin's C entry points and a fake host (HTTP via
// kpihub::net::HttpClient, secrets from a map, a clock that sleeping moves).
#include <kpihub/eoffice/source.hpp>
#include <kpihub/net.hpp>
#include <kpihub/sim/eoffice_sim.hpp>

#include <gtest/gtest.h>
#include <functional>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace {

using kpihub::eoffice::EOfficeSource;
using kpihub::sim::EOfficeSimConfig;
using kpihub::sim::EOfficeSimulator;

const std::string kTls = std::string(KPIHUB_FIXTURES_DIR) + "/tls/";

std::string as_string(kpihub_str s) {
  return s.data ? std::string(s.data, s.size) : "";
}

// ------------------------------------------------------------ fake host ---

class FakeHost {
 public:
  FakeHost() {
    api_.struct_size = sizeof(api_);
    api_.ctx = this;
    api_.log = [](void* ctx, kpihub_log_level level, kpihub_str message) {
      auto* self = static_cast<FakeHost*>(ctx);
      std::lock_guard lock(self->mutex_);
      self->logs.push_back(std::to_string(level) + " " + as_string(message));
    };
    api_.now_unix_ms = [](void* ctx) { return static_cast<FakeHost*>(ctx)->clock_ms.load(); };
    api_.utc_offset_minutes = [](void*) { return int32_t{420}; };
    api_.secret = [](void* ctx, kpihub_str reference, char* out, size_t capacity, size_t* size,
                     kpihub_error_buf err) {
      auto* self = static_cast<FakeHost*>(ctx);
      const auto it = self->secrets.find(as_string(reference));
      if (it == self->secrets.end()) {
        kpihub::sdk::detail::write_error(err, "secret " + as_string(reference) + " not found");
        return KPIHUB_ERR_CONFIG;
      }
      *size = it->second.size();
      if (it->second.size() <= capacity) std::memcpy(out, it->second.data(), it->second.size());
      return KPIHUB_OK;
    };
    api_.metric_add = [](void*, kpihub_str, kpihub_str, double) {
      ADD_FAILURE() << "the adapter used ABI 1.0's metric_add";
    };
    api_.metric_declare = [](void*, kpihub_str, kpihub_metric_type, kpihub_str, kpihub_error_buf) {
      return KPIHUB_OK;
    };
    api_.metric_add_labeled = [](void* ctx, kpihub_str name, const kpihub_label* labels,
                                 size_t count, double delta) {
      auto* self = static_cast<FakeHost*>(ctx);
      std::string key = as_string(name) + "{";
      for (std::size_t i = 0; i < count; ++i) {
        key += (i ? "," : "") + as_string(labels[i].name) + "=" + as_string(labels[i].value);
      }
      std::lock_guard lock(self->mutex_);
      self->metrics[key + "}"] += delta;
    };
    api_.http_client_create = [](void*, const kpihub_http_options* o, kpihub_http_client** out,
                                 kpihub_error_buf err) {
      kpihub::net::ClientOptions options;
      if (o->ca_file.data) options.ca_file = as_string(o->ca_file);
      options.verify = o->insecure_skip_verify == 0;
      if (o->connect_timeout_ms)
        options.connect_timeout = std::chrono::milliseconds(o->connect_timeout_ms);
      if (o->request_timeout_ms)
        options.request_timeout = std::chrono::milliseconds(o->request_timeout_ms);
      try {
        *out = reinterpret_cast<kpihub_http_client*>(new kpihub::net::HttpClient(options));
        return KPIHUB_OK;
      } catch (const std::exception& e) {
        kpihub::sdk::detail::write_error(err, e.what());
        return KPIHUB_ERR_CONFIG;
      }
    };
    api_.http_request = [](void*, kpihub_http_client* client, const kpihub_http_request* request,
                           kpihub_http_response* out, kpihub_error_buf err) {
      auto* http = reinterpret_cast<kpihub::net::HttpClient*>(client);
      kpihub::net::Headers headers;
      for (std::size_t i = 0; i < request->header_count; ++i) {
        headers.emplace_back(as_string(request->headers[i].name),
                             as_string(request->headers[i].value));
      }
      try {
        auto* held = new Held{http->request(as_string(request->method), as_string(request->url),
                                            headers, as_string(request->body)),
                              {}};
        for (const auto& [k, v] : held->response.headers) {
          held->headers.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
        }
        out->status = held->response.status;
        out->headers = held->headers.data();
        out->header_count = held->headers.size();
        out->body = {held->response.body.data(), held->response.body.size()};
        out->host_private = held;
        return KPIHUB_OK;
      } catch (const kpihub::net::HttpError& e) {
        kpihub::sdk::detail::write_error(err, e.what());
        return e.kind() == kpihub::net::FailureKind::transient ? KPIHUB_ERR_TRANSIENT
                                                               : KPIHUB_ERR_CONFIG;
      }
    };
    api_.http_response_free = [](void*, kpihub_http_response* r) {
      delete static_cast<Held*>(r->host_private);
    };
    api_.http_client_destroy = [](void*, kpihub_http_client* client) {
      delete reinterpret_cast<kpihub::net::HttpClient*>(client);
    };
    api_.stop_requested = [](void* ctx) {
      return static_cast<FakeHost*>(ctx)->stop.load() ? int32_t{1} : int32_t{0};
    };
    // No real waiting: the fake clock moves instead, so retries stay fast
    // and tests do not depend on timing.
    api_.sleep_ms = [](void* ctx, uint32_t ms) {
      auto* self = static_cast<FakeHost*>(ctx);
      self->clock_ms += ms;
      self->slept_ms += ms;
      self->sleeps += 1;
      if (self->stop_after_sleeps && self->sleeps >= self->stop_after_sleeps) self->stop = true;
    };
  }
  const kpihub_host_api* api() const { return &api_; }

  std::map<std::string, std::string> secrets{{"file:/run/secrets/eoffice", "sim-secret"}};
  std::map<std::string, double> metrics;
  std::vector<std::string> logs;
  std::atomic<int64_t> clock_ms{1744189200000};  // 2025-04-09T16:00:00+07:00
  std::atomic<uint64_t> slept_ms{0};
  std::atomic<uint64_t> sleeps{0};
  uint64_t stop_after_sleeps = 0;
  std::atomic<bool> stop{false};

 private:
  struct Held {
    kpihub::net::Response response;
    std::vector<kpihub_header> headers;
  };
  kpihub_host_api api_{};
  std::mutex mutex_;
};

// The adapter as the host sees it: created and pulled through the C ABI.
class Adapter {
 public:
  Adapter(FakeHost& host, const std::string& settings) {
    char err[1024] = {0};
    status = kpihub::sdk::detail::source_create<EOfficeSource>(host.api(), {"eoffice", 7},
                                                               {settings.data(), settings.size()},
                                                               &instance_, {err, sizeof err});
    error = err;
  }
  ~Adapter() {
    if (instance_) kpihub::sdk::detail::source_destroy<EOfficeSource>(instance_);
  }

  struct Pulled {
    kpihub_status status = KPIHUB_OK;
    std::string error;
    kpihub_page page{};
  };
  Pulled pull(const std::optional<std::string>& cursor) {
    Pulled out;
    char err[1024] = {0};
    kpihub_str c = cursor ? kpihub_str{cursor->data(), cursor->size()} : kpihub_str{nullptr, 0};
    out.status =
        kpihub::sdk::detail::source_pull<EOfficeSource>(instance_, c, &out.page, {err, sizeof err});
    out.error = err;
    return out;
  }
  Pulled list_staff(const kpihub_staff_entry** entries, size_t* count) {
    Pulled out;
    char err[1024] = {0};
    out.status = kpihub::sdk::detail::source_list_staff<EOfficeSource>(instance_, entries, count,
                                                                       {err, sizeof err});
    out.error = err;
    return out;
  }

  kpihub_status status = KPIHUB_OK;
  std::string error;

  // What the SDK holds for the instance between calls.
  const kpihub::sdk::detail::SourceInstance<EOfficeSource>& held() const {
    return *static_cast<const kpihub::sdk::detail::SourceInstance<EOfficeSource>*>(
        static_cast<const void*>(instance_));
  }

 private:
  kpihub_instance* instance_ = nullptr;
};

std::string settings_for(const std::string& base_url, const std::string& extra = "") {
  return R"({"base_url": ")" + base_url +
         R"(", "client_id": "kpihub", "client_secret_file": "/run/secrets/eoffice",
             "page_size": 100, "updated_since": "2025-04-01T00:00:00+07:00")" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

// What the hub's store would hold after applying the pages: the highest
// revision per id, and the reasons of rejected ones.
struct Walk {
  std::map<std::string, std::pair<int, bool>> records;  // id -> (revision, retracted)
  std::map<std::string, std::string> rejected;          // id -> reason
  std::size_t pages = 0;
  std::size_t transient_failures = 0;
  std::optional<std::string> cursor;
  std::string last_progress;
};

// Pulls until caught up, or only `page_limit` pages when one is given.
void walk(Adapter& adapter, Walk& w, std::optional<std::size_t> page_limit = std::nullopt) {
  const std::size_t max_pages = page_limit.value_or(10000);
  for (std::size_t i = 0; i < max_pages; ++i) {
    const auto pulled = adapter.pull(w.cursor);
    if (pulled.status == KPIHUB_ERR_TRANSIENT) {
      // The host retries later from the same cursor.
      ASSERT_LT(++w.transient_failures, 100u) << pulled.error;
      continue;
    }
    ASSERT_EQ(pulled.status, KPIHUB_OK) << pulled.error;
    ++w.pages;
    const kpihub_page& p = pulled.page;
    for (std::size_t k = 0; k < p.record_count; ++k) {
      const std::string id = as_string(p.records[k].source_id);
      const int revision = std::stoi(as_string(p.records[k].revision));
      auto& slot = w.records[id];
      if (revision > slot.first) slot = {revision, as_string(p.records[k].retracted) == "true"};
    }
    for (std::size_t k = 0; k < p.rejected_count; ++k) {
      w.rejected[as_string(p.rejected[k].source_id)] = as_string(p.rejected[k].reason);
    }
    w.cursor = as_string(p.next_cursor);
    w.last_progress = as_string(p.progress);
    if (p.caught_up) return;
  }
  if (!page_limit) FAIL() << "never caught up";
}

// Compares a walk with what the simulator says it holds.
void expect_same_as_served(const Walk& w, const EOfficeSimulator& sim_const) {
  auto& sim = const_cast<EOfficeSimulator&>(sim_const);
  std::size_t expected_records = 0, expected_rejected = 0;
  for (const auto& item : sim.data().served()) {
    SCOPED_TRACE(item.id);
    if (item.malformed_kind == "wrong_type" || item.malformed_kind == "bad_utf8") {
      // The adapter rejects these; bad_date and missing_field are the host's to catch.
      ++expected_rejected;
      ASSERT_TRUE(w.rejected.count(item.id));
      EXPECT_EQ(w.rejected.at(item.id),
                item.malformed_kind == "wrong_type" ? "bad_value" : "bad_encoding");
      continue;
    }
    ++expected_records;
    ASSERT_TRUE(w.records.count(item.id)) << "missing from the walk";
    EXPECT_EQ(w.records.at(item.id).first, item.revision);
    EXPECT_EQ(w.records.at(item.id).second, item.deleted);
  }
  EXPECT_EQ(w.records.size(), expected_records) << "the walk has ids the simulator never served";
  EXPECT_EQ(w.rejected.size(), expected_rejected);
}

EOfficeSimConfig small_province() {
  EOfficeSimConfig c;
  c.seed = 7;
  c.agencies = 3;
  c.staff = 30;
  c.days = 3;
  c.client_secret = "sim-secret";
  return c;
}

// ---------------------------------------------------------------- tests ---

TEST(EOfficeSource, FullWalkReturnsExactlyTheServedSet) {
  EOfficeSimConfig config = small_province();
  config.malformed = 0.05;
  EOfficeSimulator sim(config);
  sim.start();
  FakeHost host;
  Adapter adapter(host, settings_for(sim.base_url()));
  ASSERT_EQ(adapter.status, KPIHUB_OK) << adapter.error;
  Walk w;
  walk(adapter, w);
  expect_same_as_served(w, sim);
  EXPECT_GT(w.pages, 5u);
  EXPECT_EQ(w.transient_failures, 0u);
  EXPECT_NE(w.last_progress.find("eoffice: page "), std::string::npos) << w.last_progress;
  EXPECT_NE(w.last_progress.find("caught up"), std::string::npos) << w.last_progress;

  // Pulling again from the stored cursor brings nothing twice...
  Walk again;
  again.cursor = w.cursor;
  walk(adapter, again);
  EXPECT_TRUE(again.records.empty());
  EXPECT_TRUE(again.rejected.empty());
  // ...but new entries and edits made meanwhile, with their new revisions.
  sim.data().add_live(25, 1893456000);  // 2030-01-01
  walk(adapter, again);
  EXPECT_GT(again.records.size() + again.rejected.size(), 0u);
  for (const auto& [id, rev] : again.records) w.records[id] = rev;
  for (const auto& [id, reason] : again.rejected) w.rejected[id] = reason;
  expect_same_as_served(w, sim);
}

TEST(EOfficeSource, FaultsRetriesAndShortTokensLoseNothing) {
  EOfficeSimConfig config = small_province();
  config.fail_5xx = 0.2;
  config.fail_429 = 0.05;
  config.drop = 0.05;
  config.token_ttl_seconds = 1;
  config.retry_after_seconds = 2;
  EOfficeSimulator sim(config);
  sim.start();
  FakeHost host;
  Adapter adapter(host, settings_for(sim.base_url(), R"("page_size": 50)"));
  ASSERT_EQ(adapter.status, KPIHUB_OK) << adapter.error;
  Walk w;
  walk(adapter, w);
  expect_same_as_served(w, sim);
  // The faults did happen, and were waited out.
  EXPECT_GT(sim.stats().faults_5xx.load(), 0u);
  EXPECT_GT(sim.stats().faults_429.load(), 0u);
  EXPECT_GT(sim.stats().drops.load(), 0u);
  EXPECT_GT(host.slept_ms.load(), 2000u);
  EXPECT_GE(sim.stats().tokens.load(), 2u) << "tokens of 1 s must have been renewed";
}

TEST(EOfficeSource, ExpiredPageTokenRestartsFromTheCursor) {
  EOfficeSimConfig config = small_province();
  config.page_token_ttl_seconds = 0;  // every page token has expired when it comes back
  EOfficeSimulator sim(config);
  sim.start();
  FakeHost host;
  Adapter adapter(host, settings_for(sim.base_url()));
  ASSERT_EQ(adapter.status, KPIHUB_OK) << adapter.error;
  Walk w;
  walk(adapter, w, 1);  // first page only
  ASSERT_TRUE(w.cursor);
  ASSERT_NE(w.cursor->find("page_token"), std::string::npos) << *w.cursor;
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past issue time + 0 s
  walk(adapter, w);
  EXPECT_GT(sim.stats().expired_page_tokens.load(), 0u);
  EXPECT_GT(host.metrics["eoffice_page_token_restarts_total{}"], 0);
  expect_same_as_served(w, sim);

  // A token the server never issued is handled the same way.
  Walk fresh;
  walk(adapter, fresh, 1);
  auto cursor = kpihub::eoffice::Cursor::decode(*fresh.cursor);
  cursor.page_token = "not-a-token";
  fresh.cursor = cursor.encode();
  walk(adapter, fresh);
  expect_same_as_served(fresh, sim);
}

TEST(EOfficeSource, WrongClientSecretIsAnAuthErrorWithoutRetries) {
  EOfficeSimulator sim(small_province());
  sim.start();
  FakeHost host;
  host.secrets["file:/run/secrets/eoffice"] = "wrong";
  Adapter adapter(host, settings_for(sim.base_url()));
  ASSERT_EQ(adapter.status, KPIHUB_OK) << adapter.error;
  const auto pulled = adapter.pull(std::nullopt);
  EXPECT_EQ(pulled.status, KPIHUB_ERR_AUTH);
  EXPECT_EQ(pulled.error, "eoffice: client credentials refused by " + sim.base_url() +
                              "/oauth2/token (check client_id and client_secret_file)");
  EXPECT_EQ(sim.stats().requests.load(), 1u) << "a refused secret is not retried";
  EXPECT_EQ(host.slept_ms.load(), 0u);
}

TEST(EOfficeSource, MissingSecretAndUnknownSettingsFailAtCreation) {
  FakeHost host;
  host.secrets.clear();
  Adapter no_secret(host, settings_for("http://127.0.0.1:9"));
  EXPECT_EQ(no_secret.status, KPIHUB_ERR_CONFIG);
  EXPECT_NE(no_secret.error.find("file:/run/secrets/eoffice"), std::string::npos)
      << no_secret.error;
  FakeHost host2;
  Adapter typo(host2, settings_for("http://127.0.0.1:9", R"("page_sise": 10)"));
  EXPECT_EQ(typo.status, KPIHUB_ERR_CONFIG);
  EXPECT_NE(typo.error.find("sources.eoffice.settings.page_sise: unknown setting"),
            std::string::npos)
      << typo.error;
}

TEST(EOfficeSource, PersistentFailureGivesUpNamingUrlAndStatus) {
  EOfficeSimConfig config = small_province();
  config.fail_5xx = 1.0;
  EOfficeSimulator sim(config);
  sim.start();
  FakeHost host;
  Adapter adapter(host, settings_for(sim.base_url(), R"("max_attempts": 3)"));
  const auto pulled = adapter.pull(std::nullopt);
  EXPECT_EQ(pulled.status, KPIHUB_ERR_TRANSIENT);
  EXPECT_NE(pulled.error.find(sim.base_url() + "/api/v1/work-diary?updated_since="),
            std::string::npos)
      << pulled.error;
  EXPECT_NE(pulled.error.find("after 3 attempts; last failure: HTTP 50"), std::string::npos)
      << pulled.error;
  EXPECT_EQ(sim.stats().faults_5xx.load(), 3u);
  EXPECT_EQ(host.sleeps.load(), 2u);
}

TEST(EOfficeSource, StopDuringRetryWaitReturnsPromptly) {
  EOfficeSimConfig config = small_province();
  config.fail_429 = 1.0;
  config.retry_after_seconds = 3600;
  EOfficeSimulator sim(config);
  sim.start();
  FakeHost host;
  host.stop_after_sleeps = 1;
  Adapter adapter(host, settings_for(sim.base_url()));
  const auto pulled = adapter.pull(std::nullopt);
  EXPECT_EQ(pulled.status, KPIHUB_ERR_TRANSIENT);
  EXPECT_NE(pulled.error.find("stop requested"), std::string::npos) << pulled.error;
  EXPECT_EQ(host.slept_ms.load(), 300000u) << "Retry-After is honoured up to retry_after_max_ms";
}

TEST(EOfficeSource, UnreadablePageIsADataErrorNamingUrlAndOffset) {
  const std::string truncated = R"({"items": [{"id": "WD-1", "revision": 1, "updat)";
  kpihub::net::HttpServer server({}, [&](const kpihub::net::Request& r) {
    kpihub::net::Reply reply;
    reply.body =
        r.path == "/oauth2/token" ? R"({"access_token": "t", "expires_in": 60})" : truncated;
    return reply;
  });
  server.start();
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());
  FakeHost host;
  Adapter adapter(host, settings_for(base, R"("max_attempts": 2)"));
  const auto pulled = adapter.pull(std::nullopt);
  EXPECT_EQ(pulled.status, KPIHUB_ERR_DATA);
  EXPECT_NE(pulled.error.find("eoffice: page from " + base + "/api/v1/work-diary"),
            std::string::npos)
      << pulled.error;
  EXPECT_NE(pulled.error.find("at byte " + std::to_string(truncated.size())), std::string::npos)
      << pulled.error;
  EXPECT_NE(pulled.error.find("cursor not moved"), std::string::npos) << pulled.error;
}

// A server answering canned bodies: the token endpoint with `token_answer`, every other path
// with what `page` returns for the request.
struct CannedServer {
  CannedServer(std::string token_answer,
               std::function<std::string(const kpihub::net::Request&)> page)
      : server({}, [token_answer = std::move(token_answer),
                    page = std::move(page)](const kpihub::net::Request& r) {
          kpihub::net::Reply reply;
          reply.body = r.path == "/oauth2/token" ? token_answer : page(r);
          return reply;
        }) {
    server.start();
  }
  std::string base() { return "http://127.0.0.1:" + std::to_string(server.port()); }
  kpihub::net::HttpServer server;
};

constexpr const char* kGoodToken = R"({"access_token": "t", "expires_in": 60})";
const std::string kOneItem =
    R"({"id": "WD-1", "revision": 1, "updated_at": "2025-04-09T16:00:00+07:00",
  "staff_code": "KH-000123", "task_code": "B.03.2", "work_date": "2025-04-08", "minutes": 30,
  "quantity": 1})";

// Issue 19: a token answer in an unexpected shape was written whole, token included, to the
// log, the dashboard and /readyz. Nothing of an authentication answer is shown but its shape.
TEST(EOfficeSource, ATokenAnswerInAnUnexpectedShapeIsNeverShown) {
  for (const std::string& answer :
       {std::string(R"({"accessToken": "SECRET-TOKEN-42", "expires_in": 60})"),
        std::string(R"(SECRET-TOKEN-42)")}) {
    CannedServer server(answer, [](const auto&) { return std::string("{}"); });
    FakeHost host;
    Adapter adapter(host, settings_for(server.base()));
    const auto pulled = adapter.pull(std::nullopt);
    EXPECT_NE(pulled.status, KPIHUB_OK);
    EXPECT_EQ(pulled.error.find("SECRET-TOKEN-42"), std::string::npos) << pulled.error;
    EXPECT_NE(pulled.error.find("has no access_token"), std::string::npos) << pulled.error;
    for (const auto& line : host.logs) {
      EXPECT_EQ(line.find("SECRET-TOKEN-42"), std::string::npos) << line;
    }
  }
  CannedServer keys(R"({"accessToken": "SECRET-TOKEN-42"})", [](const auto&) { return "{}"; });
  FakeHost host;
  Adapter adapter(host, settings_for(keys.base()));
  EXPECT_NE(adapter.pull(std::nullopt).error.find("the keys accessToken (values not shown)"),
            std::string::npos);
}

// Issue 19: one page of a million `{}` items took 1.2 GB. A page may hold at most the page size
// asked for; beyond it the page is refused, with the reason, before it is parsed into values.
TEST(EOfficeSource, APageLongerThanThePageSizeAskedForIsRefused) {
  CannedServer server(kGoodToken, [](const auto&) {
    std::string items;
    for (int i = 0; i < 101; ++i) items += (i ? ",{}" : "{}");
    return R"({"items": [)" + items + "]}";
  });
  FakeHost host;
  Adapter adapter(host, settings_for(server.base(), R"("max_attempts": 2)"));
  const auto pulled = adapter.pull(std::nullopt);
  EXPECT_EQ(pulled.status, KPIHUB_ERR_DATA);
  EXPECT_NE(pulled.error.find("the page's \"items\" holds more than 100 items, the page size "
                              "asked for"),
            std::string::npos)
      << pulled.error;
}

// Issue 19: a page token that never ends the walk made `run --once` run for ever at about
// 3,600 requests a second. A walk that makes no progress is stopped, naming the token.
TEST(EOfficeSource, AWalkThatHandsBackAPageTokenAgainIsStopped) {
  CannedServer server(kGoodToken, [](const auto&) {
    return R"({"items": [)" + kOneItem + R"(], "next_page_token": "TOKEN-A"})";
  });
  FakeHost host;
  Adapter adapter(host, settings_for(server.base()));
  Walk w;
  auto pulled = adapter.pull(std::nullopt);
  ASSERT_EQ(pulled.status, KPIHUB_OK) << pulled.error;
  pulled = adapter.pull(as_string(pulled.page.next_cursor));
  EXPECT_EQ(pulled.status, KPIHUB_ERR_DATA);
  EXPECT_NE(pulled.error.find("handed back the page token TOKEN-A"), std::string::npos)
      << pulled.error;
}

TEST(EOfficeSource, AWalkOfPagesWithNothingNewIsStopped) {
  std::atomic<int> served{0};
  CannedServer server(kGoodToken, [&](const auto&) {
    return R"({"items": [)" + kOneItem + R"(], "next_page_token": "TOKEN-)" +
           std::to_string(++served) + R"("})";
  });
  FakeHost host;
  Adapter adapter(host, settings_for(server.base(), R"("max_stalled_pages": 3)"));
  std::optional<std::string> cursor;
  Adapter::Pulled pulled;
  for (int i = 0; i < 10; ++i) {
    pulled = adapter.pull(cursor);
    if (pulled.status != KPIHUB_OK) break;
    cursor = as_string(pulled.page.next_cursor);
  }
  EXPECT_EQ(pulled.status, KPIHUB_ERR_DATA);
  EXPECT_NE(pulled.error.find("3 pages in a row with nothing new"), std::string::npos)
      << pulled.error;
  EXPECT_EQ(served.load(), 4) << "the first page is new, the next three are not";
}

// Issue 19: retries were silent (the first warning came after 5 failed attempts, 152 s), and a
// pull against a server that never recovers had no end but its attempts. The first failure is
// said at once with its cause, later ones at most once a minute, and a pull has a time budget.
TEST(EOfficeSource, TheFirstFailureIsSaidAtOnceAndAPullEndsWithItsTimeBudget) {
  EOfficeSimConfig config = small_province();
  config.fail_5xx = 1.0;
  EOfficeSimulator sim(config);
  sim.start();
  FakeHost host;
  Adapter adapter(host,
                  settings_for(sim.base_url(), R"("max_attempts": 100, "backoff_initial_ms": 1000,
      "backoff_max_ms": 1000, "pull_budget_ms": 10000)"));
  const int64_t started = host.clock_ms.load();
  const auto pulled = adapter.pull(std::nullopt);
  EXPECT_EQ(pulled.status, KPIHUB_ERR_TRANSIENT);
  EXPECT_NE(pulled.error.find("the pull's time budget of 10 s (pull_budget_ms) ends"),
            std::string::npos)
      << pulled.error;
  EXPECT_NE(pulled.error.find("HTTP 5"), std::string::npos) << pulled.error;
  EXPECT_LE(host.clock_ms.load() - started, 10000);
  std::size_t warnings = 0;
  for (const auto& line : host.logs) {
    if (line.rfind(std::to_string(KPIHUB_LOG_WARN) + " ", 0) == 0 &&
        line.find("failed (HTTP 5") != std::string::npos) {
      ++warnings;
      EXPECT_NE(line.find("retrying in"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(warnings, 1u) << "the first failure at once, then nothing within the minute";
}

TEST(EOfficeSource, StaffListWalksAllPages) {
  EOfficeSimulator sim(small_province());
  sim.start();
  FakeHost host;
  Adapter adapter(host, settings_for(sim.base_url(), R"("page_size": 7)"));
  const kpihub_staff_entry* entries = nullptr;
  size_t count = 0;
  const auto listed = adapter.list_staff(&entries, &count);
  ASSERT_EQ(listed.status, KPIHUB_OK) << listed.error;
  const auto& staff = sim.data().staff();
  ASSERT_EQ(count, staff.size());
  std::set<std::string> codes;
  for (size_t i = 0; i < count; ++i) {
    codes.insert(as_string(entries[i].staff_code));
    EXPECT_EQ(as_string(entries[i].full_name), staff[i].full_name);
    EXPECT_EQ(as_string(entries[i].agency_code), staff[i].agency_code);
    EXPECT_EQ(entries[i].leader != 0, staff[i].leader);
    EXPECT_EQ(entries[i].active != 0, staff[i].active);
  }
  EXPECT_EQ(codes.size(), staff.size());
}

// The staff list is the host's to copy until its next call on the instance (abi.h), then the
// SDK lets it go: for 35,000 staff it held 11 MB for the life of the hub (bench/run, heaptrack).
TEST(EOfficeSource, TheStaffListIsNotHeldPastTheNextCall) {
  EOfficeSimulator sim(small_province());
  sim.start();
  FakeHost host;
  Adapter adapter(host, settings_for(sim.base_url(), R"("page_size": 7)"));
  const kpihub_staff_entry* entries = nullptr;
  size_t count = 0;
  ASSERT_EQ(adapter.list_staff(&entries, &count).status, KPIHUB_OK);
  ASSERT_GT(count, 0u);
  EXPECT_EQ(adapter.held().staff.size(), count);
  const auto pulled = adapter.pull(std::nullopt);
  ASSERT_EQ(pulled.status, KPIHUB_OK) << pulled.error;
  EXPECT_EQ(adapter.held().staff.capacity(), 0u);
  EXPECT_EQ(adapter.held().c_staff.capacity(), 0u);
}

// ------------------------------------------------------------------ TLS ---

class EOfficeTls : public ::testing::Test {
 protected:
  std::unique_ptr<EOfficeSimulator> start(const std::string& cert) {
    kpihub::net::ServerOptions options;
    options.tls_cert_file = kTls + cert + ".pem";
    options.tls_key_file = kTls + cert + ".key";
    auto sim = std::make_unique<EOfficeSimulator>(small_province(), options);
    sim->start();
    return sim;
  }
  Adapter::Pulled first_pull(const std::string& base, const std::string& ca) {
    FakeHost host;
    Adapter adapter(host, settings_for(base, R"("ca_file": ")" + kTls + ca + R"(")"));
    EXPECT_EQ(adapter.status, KPIHUB_OK) << adapter.error;
    return adapter.pull(std::nullopt);
  }
};

TEST_F(EOfficeTls, TestCaWorks) {
  const auto sim = start("server");
  ASSERT_EQ(sim->base_url().rfind("https://", 0), 0u);
  const auto pulled = first_pull(sim->base_url(), "ca.pem");
  ASSERT_EQ(pulled.status, KPIHUB_OK) << pulled.error;
  EXPECT_GT(pulled.page.record_count, 0u);
}

TEST_F(EOfficeTls, WrongCaIsRefusedNamingTheCertificateProblem) {
  const auto sim = start("server");
  const auto pulled = first_pull(sim->base_url(), "other-ca.pem");
  EXPECT_EQ(pulled.status, KPIHUB_ERR_CONFIG) << "a TLS refusal is configuration, not transient";
  EXPECT_NE(pulled.error.find("certificate verify failed"), std::string::npos) << pulled.error;
  EXPECT_NE(pulled.error.find("/oauth2/token"), std::string::npos) << pulled.error;
}

TEST_F(EOfficeTls, WrongHostIsRefusedNamingTheHost) {
  const auto sim = start("wrong-host");
  const std::string base = "https://localhost:" + std::to_string(sim->port());
  const auto pulled = first_pull(base, "ca.pem");
  EXPECT_EQ(pulled.status, KPIHUB_ERR_CONFIG);
  EXPECT_NE(pulled.error.find("not valid for host 'localhost'"), std::string::npos) << pulled.error;
}

TEST_F(EOfficeTls, InsecureSkipVerifyIsAllowedButLogged) {
  const auto sim = start("wrong-host");
  FakeHost host;
  Adapter adapter(host, settings_for(sim->base_url(), R"("insecure_skip_verify": true)"));
  ASSERT_EQ(adapter.status, KPIHUB_OK) << adapter.error;
  const auto pulled = adapter.pull(std::nullopt);
  EXPECT_EQ(pulled.status, KPIHUB_OK) << pulled.error;
  ASSERT_FALSE(host.logs.empty());
  EXPECT_NE(host.logs[0].find("TLS certificate and host-name checks are OFF"), std::string::npos);
}

}  // namespace
