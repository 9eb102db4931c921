// The admin API over real HTTP: every endpoint, every way authentication can
// fail, bad and oversized requests, and a slow client beside a fast one.
#include <kpihub/admin.hpp>
#include <kpihub_test/store.hpp>

#include <Poco/Base64Encoder.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <boost/asio.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace kpihub;

namespace {

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "in: " << (haystack)

std::string sha256_hex(const std::string& text) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), d, &n, EVP_sha256(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", d[i]);
    out += buf;
  }
  return out;
}

std::string base64url(const std::string& text) {
  std::ostringstream s;
  Poco::Base64Encoder enc(s, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
  enc << text;
  enc.close();
  return s.str();
}

class FixedClock final : public Clock {
 public:
  int64_t now_unix_ms() const override { return now; }
  int64_t now = 1'745'000'000'000;  // 2025-04-18
};

class NullLogger final : public Logger {
 public:
  void log(LogLevel, std::string_view, std::string_view message, std::string_view) override {
    lines.emplace_back(message);
  }
  std::vector<std::string> lines;
};

class FakeHub final : public HubView {
 public:
  std::vector<SourceStatus> source_status() const override {
    SourceStatus s;
    s.name = "eoffice";
    s.plugin = "eoffice";
    s.state = state;
    s.last_caught_up_ms = 1'745'000'000'000 - 90'000;
    s.last_error = state == "failing" ? "eoffice: HTTP 503 from https://eoffice.example/api" : "";
    s.records = 1234;
    SourceStatus stuck;  // pulling since the hub started, never caught up
    stuck.name = "health";
    stuck.plugin = "health";
    stuck.state = "pulling";
    return {s, stuck};
  }
  std::vector<PluginStatus> plugin_status() const override {
    return {{"eoffice", "source", "1.0.0", "E-Office work diary", "/plugins/libkpihub-eoffice.so",
             "loaded", ""}};
  }
  bool request_pull(const std::string& source) override {
    if (source != "eoffice") return false;
    pulls.push_back(source);
    return true;
  }
  std::string explain(const std::string& staff, const Month& month) override {
    return "explain " + staff + " " + month.str() + "\n";
  }
  ReplayResult replay_quarantine(const std::string& source, const std::string& reason,
                                 int64_t id) override {
    replays.push_back(source + "|" + reason + "|" + std::to_string(id));
    ReplayResult r;
    r.replayed = 2;
    r.still_failing = 1;
    r.problems = {
        "quarantine 3 (eoffice:WD-2): still bad_value: declared_minutes: \"-5\" is negative"};
    return r;
  }
  std::string state = "caught_up";
  std::vector<std::string> pulls;
  std::vector<std::string> replays;
};

const std::string kReadToken = "read-token-7f3a";
const std::string kOperateToken = "operate-token-91bc";
const std::string kJwtSecret = "jwt-hmac-secret-for-tests-only-0123456789";

// On each store engine (AdminApiTest/sqlite, AdminApiTest/rocksdb).
class AdminApiTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');
    dir_ = fs::temp_directory_path() / ("kpihub-admin-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "jwt-secret") << kJwtSecret << "\n";
    store_ = test::open_test_store(GetParam(), dir_ / test::store_file_name(GetParam()));
    seed_store();
    config_.hub_id = "test-hub";
    PluginInstanceConfig sink;
    sink.name = "provincial";
    config_.sinks.push_back(sink);
    config_.admin.listen = "127.0.0.1:0";
    config_.admin.tokens = {{"reader", sha256_hex(kReadToken), "read"},
                            {"ops", sha256_hex(kOperateToken), "operate"}};
    AdminJwt jwt;
    jwt.algorithms = {"HS256"};
    jwt.hmac_secret_file = (dir_ / "jwt-secret").string();
    jwt.issuer = "https://idp.khanhhoa.gov.vn";
    jwt.audience = "kpihub";
    config_.admin.jwt = jwt;
  }
  void TearDown() override {
    if (server_) server_->stop();
    server_.reset();
    api_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  void start(bool open_read_pages = true) {
    config_.admin.open_read_pages = open_read_pages;
    api_ =
        std::make_unique<AdminApi>(config_, *store_, reference_, metrics_, hub_, clock_, logger_);
    server_ = std::make_unique<AdminServer>(config_.admin, *api_);
    server_->start();
    base_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }

  net::Response call(const std::string& method, const std::string& path,
                     const std::optional<std::string>& token = std::nullopt,
                     const std::string& body = {}) {
    net::Headers headers;
    if (token) headers.emplace_back("Authorization", "Bearer " + *token);
    return client_.request(method, base_ + path, headers, body);
  }

  std::string jwt(const std::string& role, int64_t expires_in_s = 300, const std::string& iss = "",
                  bool with_exp = true) {
    Poco::JWT::Token token;
    token.setType("JWT");
    token.setSubject("nguyen.van.a");
    token.setIssuer(iss.empty() ? config_.admin.jwt->issuer : iss);
    token.setAudience("kpihub");
    token.payload().set("kpihub_role", role);
    if (with_exp) {
      token.setExpiration(Poco::Timestamp::fromEpochTime(clock_.now / 1000 + expires_in_s));
    }
    Poco::JWT::Signer signer(kJwtSecret);
    return signer.sign(token, Poco::JWT::Signer::ALGO_HS256);
  }

  void seed_store() {
    PageCommit page;
    page.source = "eoffice";
    page.cursor = "c1";
    page.received_at_unix_ms = 1'745'000'000'000 - 3'600'000;
    for (int i = 0; i < 3; ++i) {
      QuarantineEntry q;
      q.source_system = "eoffice";
      q.source_id = "WD-" + std::to_string(i);
      q.record_id = "eoffice:WD-" + std::to_string(i);
      q.reason = i == 0 ? Reason::unknown_task : Reason::bad_value;
      q.field = "declared_minutes";
      q.message = "declared_minutes: \"-5\" is negative";
      q.payload = "{}";
      page.quarantined.push_back(q);
    }
    store_->records().commit_page(page);
    ScoringCommit commit;
    auto agency = [](const std::string& code, double hours, bool high, const std::string& status) {
      json::object o{{"month", "2025-04"},
                     {"agency_code", code},
                     {"status", status},
                     {"staff_counted", 10},
                     {"avg_declared_hours_per_staff_day", hours},
                     {"classes",
                      {{"excellent", 2},
                       {"good", 5},
                       {"complete", 2},
                       {"not_complete", 1},
                       {"not_assessed", 0}}},
                     {"high_average_hours", high}};
      return ScoringCommit::MonthRow{OutboxKind::agency_month, "2025-04", code, code, 1,
                                     json::serialize(o)};
    };
    commit.months.push_back(agency("000.00.12.H34", 7.4, false, "on_time"));
    commit.months.push_back(agency("000.00.25.H34", 9.1, true, "not_implemented"));
    json::object staff{{"staff_code", "KH-000123"},
                       {"agency_code", "000.00.12.H34"},
                       {"full_name", "Nguyễn Thị Lan"},
                       {"kpi_score", 1.37},
                       {"class", "good"}};
    commit.months.push_back({OutboxKind::staff_month, "2025-04", "KH-000123", "000.00.12.H34", 1,
                             json::serialize(staff)});
    store_->scoring().commit_scoring(commit);
  }

  fs::path dir_;
  std::unique_ptr<Storage> store_;
  HubConfig config_;
  ReferenceData reference_;
  Metrics metrics_;
  FakeHub hub_;
  FixedClock clock_;
  NullLogger logger_;
  std::unique_ptr<AdminApi> api_;
  std::unique_ptr<AdminServer> server_;
  net::HttpClient client_{net::ClientOptions{}};
  std::string base_;
};

INSTANTIATE_TEST_SUITE_P(Engines, AdminApiTest, ::testing::ValuesIn(test::store_engines()),
                         test::engine_name);

// Review of issue 18: the lag alert could not fire for a source that never caught up since the
// hub started (no series). Its lag counts from the hub's start.
TEST_P(AdminApiTest, ASourceThatNeverCaughtUpLagsSinceTheHubStarted) {
  start(true);
  clock_.now += 600'000;
  const auto metrics = call("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_CONTAINS(metrics.body, "kpihub_source_lag_seconds{source=\"health\"} 600\n");
  EXPECT_CONTAINS(metrics.body, "kpihub_source_lag_seconds{source=\"eoffice\"} 690\n");
}

TEST_P(AdminApiTest, ReadPagesAreOpenWhenConfiguredSo) {
  start(true);
  EXPECT_EQ(call("GET", "/healthz").status, 200);
  const auto ready = call("GET", "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  const auto metrics = call("GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_CONTAINS(metrics.body, "kpihub_quarantine_entries 3");
  EXPECT_CONTAINS(metrics.body, "kpihub_outbox_depth{sink=\"provincial\"} 0");
  EXPECT_CONTAINS(metrics.body, "kpihub_source_lag_seconds{source=\"eoffice\"} 90");
  EXPECT_CONTAINS(metrics.body, "kpihub_plugin_loaded{kind=\"source\",plugin=\"eoffice\"} 1");
  // The API itself is never open.
  EXPECT_EQ(call("GET", "/api/status").status, 401);
}

TEST_P(AdminApiTest, ReadPagesNeedATokenWhenClosed) {
  start(false);
  EXPECT_EQ(call("GET", "/metrics").status, 401);
  EXPECT_EQ(call("GET", "/").status, 401);
  EXPECT_EQ(call("GET", "/metrics", kReadToken).status, 200);
}

TEST_P(AdminApiTest, ReadinessFailsWhileASourceFails) {
  hub_.state = "failing";
  start();
  const auto r = call("GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_CONTAINS(r.body, "source eoffice is failing: eoffice: HTTP 503");
}

// Issue 19: each refused request wrote a log line (780 KB for 5,000 forged tokens). One line a
// minute, which counts the ones held back.
TEST_P(AdminApiTest, RefusedRequestsAreLoggedAtMostOnceAMinute) {
  start();
  const auto refused_lines = [&] {
    std::vector<std::string> out;
    for (const auto& line : logger_.lines) {
      if (line.rfind("refused ", 0) == 0) out.push_back(line);
    }
    return out;
  };
  for (int i = 0; i < 200; ++i) EXPECT_EQ(call("GET", "/api/status", "forged").status, 401);
  EXPECT_EQ(refused_lines().size(), 1u);
  clock_.now += 60'000;
  EXPECT_EQ(call("GET", "/api/status", "forged").status, 401);
  const auto lines = refused_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_CONTAINS(lines[1], "(and 199 more refused requests since the last line)");
}

TEST_P(AdminApiTest, EveryAuthFailureHasItsOwnAnswer) {
  start();
  auto missing = call("GET", "/api/status");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.header("WWW-Authenticate").value_or(""), "Bearer");
  EXPECT_CONTAINS(missing.body, "needs a bearer token");

  auto wrong = call("GET", "/api/status", "not-a-token");
  EXPECT_EQ(wrong.status, 401);
  EXPECT_CONTAINS(wrong.body, "the bearer token is not known");

  net::Headers basic{{"Authorization", "Basic dXNlcjpwYXNz"}};
  auto not_bearer = client_.request("GET", base_ + "/api/status", basic);
  EXPECT_EQ(not_bearer.status, 401);
  EXPECT_CONTAINS(not_bearer.body, "not \\\"Bearer <token>\\\"");

  auto read_post = call("POST", "/api/sources/eoffice/pull", kReadToken);
  EXPECT_EQ(read_post.status, 403);
  EXPECT_CONTAINS(read_post.body, "needs operate");
  EXPECT_TRUE(hub_.pulls.empty());

  // JWTs: expired, wrong algorithm ("none"), bad signature, wrong issuer, no expiry, wrong role.
  auto expired = call("GET", "/api/status", jwt("read", -10));
  EXPECT_EQ(expired.status, 401);
  EXPECT_CONTAINS(expired.body, "the JWT has expired");

  const std::string payload =
      R"({"sub":"x","iss":"https://idp.khanhhoa.gov.vn","aud":"kpihub","kpihub_role":"operate","exp":)" +
      std::to_string(clock_.now / 1000 + 300) + "}";
  const std::string none =
      base64url(R"({"alg":"none","typ":"JWT"})") + "." + base64url(payload) + ".";
  auto alg_none = call("GET", "/api/status", none);
  EXPECT_EQ(alg_none.status, 401);
  EXPECT_CONTAINS(alg_none.body, "algorithm is not accepted");

  std::string tampered = jwt("read");
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  auto bad_signature = call("GET", "/api/status", tampered);
  EXPECT_EQ(bad_signature.status, 401);
  EXPECT_CONTAINS(bad_signature.body, "signature does not verify");

  auto wrong_issuer = call("GET", "/api/status", jwt("read", 300, "https://evil.example"));
  EXPECT_EQ(wrong_issuer.status, 401);
  EXPECT_CONTAINS(wrong_issuer.body, "issuer is not https://idp.khanhhoa.gov.vn");

  auto no_expiry = call("GET", "/api/status", jwt("read", 300, "", false));
  EXPECT_EQ(no_expiry.status, 401);
  EXPECT_CONTAINS(no_expiry.body, "has no expiry");

  // Issue 19 section 3: an expiry (or not-before) given as a string was read as a number and
  // accepted. RFC 7519 4.1.4: a NumericDate, a JSON number.
  for (const std::string claim : {"exp", "nbf", "iat", "nbf as true"}) {
    const bool boolean = claim == "nbf as true";
    Poco::JWT::Token token;
    token.setType("JWT");
    token.setSubject("nguyen.van.a");
    token.setIssuer(config_.admin.jwt->issuer);
    token.setAudience("kpihub");
    token.payload().set("kpihub_role", "operate");
    token.setExpiration(Poco::Timestamp::fromEpochTime(clock_.now / 1000 + 300));
    if (boolean) {
      token.payload().set("nbf", true);  // Poco reads true as 1, a date long past
    } else {
      token.payload().set(claim, std::to_string(claim == "exp" ? clock_.now / 1000 + 300 : 0));
    }
    const std::string signed_token =
        Poco::JWT::Signer(kJwtSecret).sign(token, Poco::JWT::Signer::ALGO_HS256);
    auto string_date = call("GET", "/api/status", signed_token);
    EXPECT_EQ(string_date.status, 401) << claim;
    EXPECT_CONTAINS(string_date.body,
                    "the JWT's " + (boolean ? std::string("nbf") : claim) + " is not a number");
  }

  auto jwt_read_post = call("POST", "/api/sources/eoffice/pull", jwt("read"));
  EXPECT_EQ(jwt_read_post.status, 403);
  auto jwt_bad_role = call("GET", "/api/status", jwt("admin"));
  EXPECT_EQ(jwt_bad_role.status, 401);
  EXPECT_CONTAINS(jwt_bad_role.body, "kpihub_role claim is not read or operate");

  EXPECT_EQ(call("GET", "/api/status", jwt("read")).status, 200);
  EXPECT_EQ(call("POST", "/api/sources/eoffice/pull", jwt("operate")).status, 202);

  // No token ever reaches the log.
  for (const auto& line : logger_.lines) {
    EXPECT_EQ(line.find(kReadToken), std::string::npos) << line;
    EXPECT_EQ(line.find("not-a-token"), std::string::npos) << line;
  }
}

TEST_P(AdminApiTest, SourcesPluginsAndManualPull) {
  start();
  auto sources = call("GET", "/api/sources", kReadToken);
  ASSERT_EQ(sources.status, 200);
  const auto s = json::parse(sources.body).as_array().at(0).as_object();
  EXPECT_EQ(s.at("name").as_string(), "eoffice");
  EXPECT_EQ(s.at("state").as_string(), "caught_up");
  EXPECT_EQ(s.at("lag_seconds").as_int64(), 90);

  auto plugins = call("GET", "/api/plugins", kReadToken);
  ASSERT_EQ(plugins.status, 200);
  EXPECT_CONTAINS(plugins.body, "\"version\":\"1.0.0\"");

  EXPECT_EQ(call("POST", "/api/sources/eoffice/pull", kOperateToken).status, 202);
  EXPECT_EQ(hub_.pulls, std::vector<std::string>{"eoffice"});
  auto unknown = call("POST", "/api/sources/nope/pull", kOperateToken);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_CONTAINS(unknown.body, "no running source named \\\"nope\\\"");

  auto status = call("GET", "/api/status", kReadToken);
  ASSERT_EQ(status.status, 200);
  const auto st = json::parse(status.body).as_object();
  EXPECT_EQ(st.at("quarantined").as_int64(), 3);
  EXPECT_EQ(st.at("hub_id").as_string(), "test-hub");
}

TEST_P(AdminApiTest, QuarantineIsPagedAndFiltered) {
  start();
  auto all = json::parse(call("GET", "/api/quarantine", kReadToken).body).as_object();
  EXPECT_EQ(all.at("entries").as_array().size(), 3u);
  auto bad_value =
      json::parse(call("GET", "/api/quarantine?reason=bad_value", kReadToken).body).as_object();
  EXPECT_EQ(bad_value.at("entries").as_array().size(), 2u);
  auto first = json::parse(call("GET", "/api/quarantine?limit=2", kReadToken).body).as_object();
  ASSERT_EQ(first.at("entries").as_array().size(), 2u);
  const int64_t after = first.at("next_after").as_int64();
  auto second =
      json::parse(
          call("GET", "/api/quarantine?limit=2&after=" + std::to_string(after), kReadToken).body)
          .as_object();
  EXPECT_EQ(second.at("entries").as_array().size(), 1u);
  auto bad = call("GET", "/api/quarantine?limit=lots", kReadToken);
  EXPECT_EQ(bad.status, 400);
  EXPECT_CONTAINS(bad.body, "limit: \\\"lots\\\" is not a whole number");
}

TEST_P(AdminApiTest, QuarantineReplayNeedsOperateAndReportsWhatHappened) {
  start();
  EXPECT_EQ(call("POST", "/api/quarantine/replay?reason=unknown_staff", kReadToken).status, 403);
  EXPECT_TRUE(hub_.replays.empty());
  auto r =
      call("POST", "/api/quarantine/replay?source=eoffice&reason=unknown_staff", kOperateToken);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto o = json::parse(r.body).as_object();
  EXPECT_EQ(o.at("replayed").as_int64(), 2);
  EXPECT_EQ(o.at("still_failing").as_int64(), 1);
  EXPECT_CONTAINS(r.body, "still bad_value");
  EXPECT_EQ(call("POST", "/api/quarantine/replay?id=7", kOperateToken).status, 200);
  EXPECT_EQ(hub_.replays, (std::vector<std::string>{"eoffice|unknown_staff|0", "||7"}));
  EXPECT_EQ(call("POST", "/api/quarantine/replay?id=seven", kOperateToken).status, 400);
}

TEST_P(AdminApiTest, DeadLettersListAndReplay) {
  start();
  auto list = call("GET", "/api/dead-letters", kReadToken);
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(json::parse(list.body).at("entries").as_array().size(), 0u);
  EXPECT_EQ(call("POST", "/api/dead-letters/42/replay", kOperateToken).status, 404);
  EXPECT_EQ(call("POST", "/api/dead-letters/abc/replay", kOperateToken).status, 400);
  EXPECT_EQ(call("POST", "/api/dead-letters/42/replay", kReadToken).status, 403);
}

TEST_P(AdminApiTest, ReportsAndExplanations) {
  start();
  auto report = call("GET", "/api/reports/2025-04", kReadToken);
  ASSERT_EQ(report.status, 200);
  const auto r = json::parse(report.body).as_object();
  EXPECT_EQ(r.at("staff_months").as_array().size(), 1u);
  EXPECT_EQ(r.at("agency_months").as_array().size(), 2u);
  auto csv = call("GET", "/api/reports/2025-04?format=csv&agency=000.00.12.H34", kReadToken);
  ASSERT_EQ(csv.status, 200);
  EXPECT_EQ(csv.body.rfind("\xEF\xBB\xBFstaff_code,agency_code", 0), 0u) << csv.body;
  EXPECT_CONTAINS(csv.body, "KH-000123,000.00.12.H34");
  EXPECT_EQ(call("GET", "/api/reports/2025-13", kReadToken).status, 400);
  EXPECT_EQ(call("GET", "/api/reports/2025-04?format=xml", kReadToken).status, 400);
  auto explain = call("GET", "/api/explain?staff=KH-000123&month=2025-04", kReadToken);
  EXPECT_EQ(explain.status, 200);
  EXPECT_EQ(explain.body, "explain KH-000123 2025-04\n");
  EXPECT_EQ(call("GET", "/api/explain?month=2025-04", kReadToken).status, 400);
  EXPECT_EQ(call("GET", "/api/nothing", kReadToken).status, 404);
}

// After a rules change (and SIGHUP), assessment staff ask for a month again without a shell.
TEST_P(AdminApiTest, RescoringAMonthNeedsOperateAndMarksEveryStaffMonthOfIt) {
  start();
  PageCommit page;
  page.source = "eoffice";
  for (const char* staff : {"KH-000123", "KH-000124"}) {
    WorkRecord r;
    r.source_system = "eoffice";
    r.source_id = std::string("WD-") + staff;
    r.record_id = "eoffice:" + r.source_id;
    r.revision = 1;
    r.staff_code = staff;
    r.agency_code = "000.00.12.H34";
    r.task_code = "VB-DEN";
    r.work_date = *Date::parse("2025-04-09");
    r.declared_minutes = 60;
    r.quantity = 1;
    page.records.push_back(r);
  }
  store_->records().commit_page(page);  // the scorer will mark the day of each: not the whole month
  // What waits for the scorer, as an operator sees it.
  const auto to_score = [&] {
    const auto st = json::parse(call("GET", "/api/status", kReadToken).body).as_object();
    return std::pair{st.at("revisions_to_read").as_int64(),
                     st.at("staff_months_to_score").as_int64()};
  };
  // The page's revisions wait for the scorer: SQLite's scorer reads them back from the change
  // log and marks their days then; RocksDB marks their days with the page (architecture.md, "The
  // RocksDB engine"), so nothing waits to be read there.
  const int64_t to_read = GetParam() == "sqlite" ? 2 : 0;
  EXPECT_EQ(to_score(), (std::pair<int64_t, int64_t>{to_read, 2 - to_read}));
  EXPECT_EQ(call("POST", "/api/months/2025-04/rescore", kReadToken).status, 403);
  auto r = call("POST", "/api/months/2025-04/rescore", kOperateToken);
  ASSERT_EQ(r.status, 202) << r.body;
  const auto o = json::parse(r.body).as_object();
  EXPECT_EQ(o.at("month").as_string(), "2025-04");
  EXPECT_EQ(o.at("rules_version").as_string(), reference_.rules.version);
  EXPECT_EQ(to_score(), (std::pair<int64_t, int64_t>{to_read, 2}));
  const auto dirty = store_->scoring().dirty_staff_days(100);
  EXPECT_EQ(to_score(), (std::pair<int64_t, int64_t>{0, 2}));
  const auto metrics = call("GET", "/metrics", kReadToken).body;
  EXPECT_CONTAINS(metrics, "kpihub_scoring_revisions_to_read 0\n");
  EXPECT_CONTAINS(metrics, "kpihub_scoring_staff_months_to_score 2\n");
  EXPECT_EQ(o.at("staff_months_marked").as_int64(), 2);
  ASSERT_EQ(dirty.size(), 2u);
  for (const auto& d : dirty) {
    EXPECT_EQ(d.key.month, "2025-04");
    EXPECT_EQ(d.days, kWholeMonth) << d.key.staff_code;
  }
  EXPECT_EQ(call("POST", "/api/months/2025-4/rescore", kOperateToken).status, 400);
  EXPECT_EQ(call("GET", "/api/months/2025-04/rescore", kOperateToken).status, 404);
}

TEST_P(AdminApiTest, DashboardDrawsItsChartsFromTheStore) {
  start();
  auto page = call("GET", "/?month=2025-04");
  ASSERT_EQ(page.status, 200);
  EXPECT_CONTAINS(page.header("Content-Type").value_or(""), "text/html");
  const std::string& html = page.body;
  EXPECT_CONTAINS(html, "<svg id=\"quarantine-by-reason\"");
  EXPECT_CONTAINS(html, "data-label=\"bad_value\" data-value=\"2\"");
  EXPECT_CONTAINS(html, "data-label=\"unknown_task\" data-value=\"1\"");
  EXPECT_CONTAINS(html, "<svg id=\"agency-hours\"");
  EXPECT_CONTAINS(html, "class=\"bar flagged\" data-label=\"000.00.25.H34\" data-value=\"9.1\"");
  EXPECT_CONTAINS(html, "class=\"threshold\" data-value=\"8.5\"");
  EXPECT_CONTAINS(html, "data-label=\"good\" data-value=\"10\"");
  EXPECT_CONTAINS(html, "<ul id=\"not-implemented\"><li>000.00.25.H34</li>");
  EXPECT_CONTAINS(html, "<svg id=\"records-per-hour\"");
  EXPECT_EQ(html.find("http://cdn"), std::string::npos);
  EXPECT_EQ(call("GET", "/?month=April").status, 400);
}

TEST_P(AdminApiTest, OversizeAndMalformedRequestsAreRefusedAndTheServerGoesOn) {
  start();
  auto big = call("POST", "/api/sources/eoffice/pull", kOperateToken, std::string(200 * 1024, 'x'));
  EXPECT_EQ(big.status, 413);

  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket raw(io);
  raw.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  asio::write(raw, asio::buffer(std::string("THIS IS NOT HTTP\r\n\r\n")));
  std::string answer(256, '\0');
  boost::system::error_code ec;
  const auto n = raw.read_some(asio::buffer(answer), ec);
  answer.resize(n);
  EXPECT_CONTAINS(answer, "400");

  asio::ip::tcp::socket huge(io);
  huge.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  asio::write(huge,
              asio::buffer("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                           "\r\n\r\n"),
              ec);
  std::string answer2(256, '\0');
  const auto n2 = huge.read_some(asio::buffer(answer2), ec);
  answer2.resize(n2);
  EXPECT_CONTAINS(answer2, "431");

  EXPECT_EQ(call("GET", "/healthz").status, 200);
}

TEST_P(AdminApiTest, HttpsWhenACertificateIsConfigured) {
  const std::string tls = std::string(KPIHUB_FIXTURES_DIR) + "/tls/";
  config_.admin.tls_cert_file = tls + "server.pem";
  config_.admin.tls_key_file = tls + "server.key";
  start();
  net::ClientOptions o;
  o.ca_file = tls + "ca.pem";
  net::HttpClient https(o);
  const std::string url = "https://localhost:" + std::to_string(server_->port());
  EXPECT_EQ(https.request("GET", url + "/healthz").status, 200);
  EXPECT_EQ(
      https.request("GET", url + "/api/status", {{"Authorization", "Bearer " + kReadToken}}).status,
      200);
  // Plain HTTP to the HTTPS port gets no answer it could mistake for one.
  EXPECT_THROW(
      client_.request("GET", "http://127.0.0.1:" + std::to_string(server_->port()) + "/healthz"),
      net::HttpError);
}

TEST_P(AdminApiTest, ASlowClientDoesNotBlockOthers) {
  start();
  namespace asio = boost::asio;
  asio::io_context io;
  std::vector<asio::ip::tcp::socket> slow;
  for (int i = 0; i < 4; ++i) {  // more slow clients than server threads
    slow.emplace_back(io);
    slow.back().connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    asio::write(slow.back(), asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHo")));
  }
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(call("GET", "/api/status", kReadToken).status, 200);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_LT(took, std::chrono::seconds(5)) << "fast clients waited behind slow ones";
}

}  // namespace

// Agency codes come from E-Office's staff list unvalidated: a cell a spreadsheet would run as a
// formula (= + - @ tab CR first) is prefixed with a single quote (OWASP's CSV injection advice),
// and a carriage return inside a cell is quoted, so it cannot end the row (issue 18).
TEST_P(AdminApiTest, CsvReportCellsAreNeverRunAsFormulas) {
  auto store =
      test::open_test_store(GetParam(), dir_ / ("hostile-" + test::store_file_name(GetParam())));
  ScoringCommit commit;
  const std::vector<std::string> hostile = {"=HYPERLINK(\"http://x.example\",\"ok\")",
                                            "+1+2",
                                            "-3+4",
                                            "@SUM(A1)",
                                            "\tTAB",
                                            "\rCR",
                                            "A\rB",
                                            "000.00.12.H34"};
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    const std::string code = "KH-9" + std::to_string(i);
    json::object staff{
        {"staff_code", code}, {"agency_code", hostile[i]}, {"kpi_score", -1.5}, {"points", 12}};
    commit.months.push_back(
        {OutboxKind::staff_month, "2025-04", code, hostile[i], 1, json::serialize(staff)});
  }
  store->scoring().commit_scoring(commit);
  const std::string csv = report_csv(store->scoring(), *Month::parse("2025-04"), "");
  std::vector<std::string> lines;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 1 + hostile.size()) << csv;
  const std::vector<std::string> agency_cells = {R"x("'=HYPERLINK(""http://x.example"",""ok"")")x",
                                                 "'+1+2",
                                                 "'-3+4",
                                                 "'@SUM(A1)",
                                                 "'\tTAB",
                                                 "\"'\rCR\"",
                                                 "\"A\rB\"",
                                                 "000.00.12.H34"};
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    const std::string& line = lines[1 + i];
    const std::string staff = "KH-9" + std::to_string(i) + ",";
    ASSERT_EQ(line.rfind(staff, 0), 0u) << line;
    EXPECT_EQ(line.substr(staff.size(), agency_cells[i].size()), agency_cells[i]) << line;
    // Numbers are numbers, a negative one included: no quote before them.
    EXPECT_NE(line.find(",12,"), std::string::npos) << line;
    EXPECT_NE(line.find(",-1.5,"), std::string::npos) << line;
  }
}

namespace {

// The admin API's OpenAPI description (docs/openapi.json), checked against the real endpoints
// (issue 23, section 5): the hub serves the document as it is in the source tree; every
// operation it describes answers, with one of the statuses it lists for it, and is not the
// router's "no such endpoint"; and on each described path a method it does not describe is
// exactly that. (An endpoint on a path the document does not name at all is not found this
// way: the router has no table to list.)
TEST_P(AdminApiTest, TheOpenApiDocumentDescribesEveryEndpoint) {
  std::ifstream file(std::string(KPIHUB_SOURCE_DIR) + "/docs/openapi.json");
  std::stringstream text;
  text << file.rdbuf();
  const json::value doc = json::parse(text.str());
  ASSERT_EQ(doc.at("openapi"), "3.0.3");
  start(false);

  const auto served = call("GET", "/api/openapi.json", kReadToken);
  ASSERT_EQ(served.status, 200);
  EXPECT_EQ(json::parse(served.body), doc);
  EXPECT_EQ(call("GET", "/api/openapi.json").status, 401);  // behind a token, as all of /api

  // Values for the parameters an operation needs: what the test's hub and store hold.
  const std::map<std::string, std::string> example = {
      {"name", "eoffice"}, {"id", "42"}, {"month", "2025-04"}, {"staff", "KH-000123"}};
  std::size_t operations = 0;
  for (const auto& [path_key, item] : doc.at("paths").as_object()) {
    std::string path(path_key);
    std::string query;
    std::set<std::string> described;
    for (const auto& [method_key, operation] : item.as_object()) {
      const std::string method = [&] {
        std::string m(method_key);
        std::transform(m.begin(), m.end(), m.begin(), ::toupper);
        return m;
      }();
      described.insert(method);
      std::string target = path;
      std::string q;
      if (const auto* params = operation.as_object().if_contains("parameters")) {
        for (const auto& p : params->as_array()) {
          const std::string name(p.at("name").as_string());
          const std::string in(p.at("in").as_string());
          ASSERT_TRUE(example.count(name) || in == "query") << path << " " << name;
          if (in == "path") {
            target.replace(target.find("{" + name + "}"), name.size() + 2, example.at(name));
          } else if (p.as_object().if_contains("required") && p.at("required").as_bool()) {
            q += (q.empty() ? "?" : "&") + name + "=" + example.at(name);
          }
        }
      }
      const auto answer = call(method, target + q, kOperateToken);
      const auto& responses = operation.at("responses").as_object();
      // Each operation succeeds with the one 2xx status it lists; the test's store holds no dead
      // letter, so replaying one is its documented 404.
      std::string success;
      for (const auto& [status, response] : responses) {
        if (status.starts_with("2")) success = std::string(status);
      }
      const bool no_dead_letter = path == "/api/dead-letters/{id}/replay";
      EXPECT_EQ(std::to_string(answer.status), no_dead_letter ? "404" : success)
          << method << " " << target + q << ": " << answer.body;
      EXPECT_TRUE(responses.contains(std::to_string(answer.status)))
          << method << " " << target + q << " answered " << answer.status << ": " << answer.body;
      EXPECT_EQ(answer.body.find("no such endpoint"), std::string::npos)
          << method << " " << target + q << ": " << answer.body;
      ++operations;
    }
    // A method the document does not give a path is none of the API's.
    std::string target = path;
    for (const auto& [name, value] : example) {
      const auto at = target.find("{" + name + "}");
      if (at != std::string::npos) target.replace(at, name.size() + 2, value);
    }
    for (const char* method : {"GET", "POST", "PUT", "DELETE"}) {
      if (described.count(method)) continue;
      const auto answer = call(method, target, kOperateToken);
      EXPECT_EQ(answer.status, 404) << method << " " << target << ": " << answer.body;
    }
  }
  EXPECT_EQ(operations, 16u);

  // The document's bounds are the API's (found in review: limit=0 read past an empty page).
  for (const char* path :
       {"/api/quarantine?limit=0", "/api/dead-letters?limit=0", "/api/quarantine?limit=1001"}) {
    EXPECT_EQ(call("GET", path, kReadToken).status, 400) << path;
  }
}

}  // namespace
