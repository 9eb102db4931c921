// The provincial sink plugin, loaded through the host's plugin gate, against
// the simulated receiver over real loopback sockets.
#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/metrics.hpp>
#include <kpihub/net.hpp>
#include <kpihub/plugins.hpp>
#include <kpihub/sim/province_receiver.hpp>

#include "../../../plugins/provincial/src/retry_after.hpp"
#include "../../../plugins/provincial/src/settled_requests.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <boost/json.hpp>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using kpihub::sim::province::Faults;
using kpihub::sim::province::Receiver;
using kpihub::sim::province::ReceiverOptions;
using ::testing::HasSubstr;

const std::string kPluginFile = std::string(KPIHUB_BINARY_DIR) + "/plugins/libkpihub-provincial.so";
const std::string kTls = std::string(KPIHUB_FIXTURES_DIR) + "/tls/";
constexpr const char* kClientId = "hub-test";
constexpr const char* kClientSecret = "s3cret&=+ value";

class ManualClock final : public kpihub::Clock {
 public:
  int64_t now_unix_ms() const override { return now_.load(); }
  void advance_ms(int64_t ms) { now_ += ms; }

 private:
  std::atomic<int64_t> now_{1'744'189'200'000};  // 2025-04-09T09:00:00Z
};

class MapSecrets final : public kpihub::SecretResolver {
 public:
  std::map<std::string, std::string, std::less<>> values;
  std::string resolve(std::string_view reference) const override {
    const auto found = values.find(reference);
    if (found == values.end())
      throw std::runtime_error("secret " + std::string(reference) + " is not set");
    return found->second;
  }
};

class CapturingLogger final : public kpihub::Logger {
 public:
  void log(kpihub::LogLevel, std::string_view, std::string_view message,
           std::string_view) override {
    std::lock_guard lock(mutex_);
    lines_.emplace_back(message);
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

struct Item {
  kpihub_item_kind kind;
  std::string key;
  std::string json;
};

struct Result {
  kpihub_item_outcome outcome;
  std::string code;
  std::string message;
};

struct Delivered {
  std::vector<Result> results;
  uint32_t retry_after_ms = 0;

  std::size_t count(kpihub_item_outcome outcome) const {
    return static_cast<std::size_t>(std::count_if(
        results.begin(), results.end(), [&](const Result& r) { return r.outcome == outcome; }));
  }
};

std::string record_json(const std::string& record_id, int64_t revision, int64_t sequence,
                        bool retracted = false, const std::string& title = "Xử lý văn bản đến") {
  json::object record{
      {"record_id", record_id},
      {"source_system", "eoffice"},
      {"source_id", record_id.substr(record_id.find(':') + 1)},
      {"revision", revision},
      {"retracted", retracted},
      {"staff_code", "KH-000123"},
      {"agency_code", "000.00.12.H34"},
      {"task_code", "B.03.2"},
      {"work_date", "2025-04-08"},
      {"declared_minutes", 150},
      {"quantity", 4},
      {"title", title},
      {"scoring",
       json::object{{"rules_version", "kpi-rules/1"}, {"points", 129.6}, {"sequence", sequence}}},
      {"hub_id", "khanhhoa-hub-1"}};
  return json::serialize(record);
}

Item record_item(const std::string& record_id, int64_t revision, int64_t sequence,
                 bool retracted = false) {
  return {KPIHUB_ITEM_RECORD, record_id, record_json(record_id, revision, sequence, retracted)};
}

Item staff_month_item(const std::string& staff_code, int64_t revision) {
  const json::object month{
      {"month", "2025-04"}, {"staff_code", staff_code}, {"agency_code", "000.00.12.H34"},
      {"kpi_score", 1.95},  {"class", "not_complete"},  {"revision", revision}};
  return {KPIHUB_ITEM_STAFF_MONTH, "staff:2025-04:" + staff_code, json::serialize(month)};
}

Item agency_month_item(const std::string& agency_code, int64_t revision) {
  const json::object month{{"month", "2025-04"},
                           {"agency_code", agency_code},
                           {"status", "on_time"},
                           {"revision", revision}};
  return {KPIHUB_ITEM_AGENCY_MONTH, "agency:2025-04:" + agency_code, json::serialize(month)};
}

std::vector<Item> records(const std::string& prefix, int n) {
  std::vector<Item> items;
  for (int i = 0; i < n; ++i) items.push_back(record_item(prefix + std::to_string(i), 1, 1));
  return items;
}

struct SeenRequest {
  std::string path;
  std::string idempotency_key;
  std::string body;
};

class ProvincialTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device random;
    dir_ = fs::temp_directory_path() / ("kpihub-provincial-" + std::to_string(random()));
    fs::create_directories(dir_);
    options_.db_path = (dir_ / "province.db").string();
    options_.client_id = kClientId;
    options_.client_secret = kClientSecret;
    options_.now_unix_ms = [this] { return receiver_clock_ms_.load(); };
    secrets_.values["env:PROVINCE_SECRET"] = kClientSecret;
  }

  void TearDown() override {
    sinks_.clear();
    receiver_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  Receiver& start_receiver() {
    receiver_ = std::make_unique<Receiver>(options_);
    receiver_->start();
    receiver_->set_observer([this](const kpihub::net::Request& request) {
      std::lock_guard lock(seen_mutex_);
      seen_.push_back({request.path,
                       request.headers.count("idempotency-key")
                           ? request.headers.at("idempotency-key")
                           : std::string(),
                       request.body});
      // The observer runs before the receiver draws its fault, and the sink
      // sends one request at a time: this picks the fault of this request.
      if (faults_for_request_) receiver_->set_faults(faults_for_request_(seen_.back()));
    });
    return *receiver_;
  }

  void restart_receiver() {
    const uint16_t port = receiver_->port();
    receiver_.reset();
    options_.port = port;
    start_receiver();
  }

  json::object settings(json::object overrides = {}) {
    json::object s{{"base_url", receiver_->base_url()},
                   {"client_id", kClientId},
                   {"client_secret_env", "PROVINCE_SECRET"},
                   {"request_timeout_ms", 5000}};
    for (const auto& kv : overrides) s[kv.key()] = kv.value();
    return s;
  }

  kpihub::PluginInstance& make_sink(const json::object& sink_settings) {
    auto services =
        std::make_unique<kpihub::HostServices>("province", logger_, clock_, secrets_, &metrics_);
    sinks_.push_back(std::make_unique<kpihub::PluginInstance>(
        kpihub::load_plugin(kPluginFile), "province", json::serialize(sink_settings),
        std::move(services)));
    return *sinks_.back();
  }
  kpihub::PluginInstance& sink() {
    if (sinks_.empty()) make_sink(settings());
    return *sinks_.front();
  }

  Delivered deliver(kpihub::PluginInstance& to, const std::string& batch_id,
                    const std::vector<Item>& items, uint32_t attempt = 1) {
    std::vector<kpihub_batch_item> c_items;
    for (const Item& item : items) {
      c_items.push_back({sizeof(kpihub_batch_item),
                         item.kind,
                         {item.key.data(), item.key.size()},
                         {item.json.data(), item.json.size()}});
    }
    const std::string hub_id = "khanhhoa-hub-1";
    kpihub_batch batch{sizeof(kpihub_batch),
                       {batch_id.data(), batch_id.size()},
                       {hub_id.data(), hub_id.size()},
                       c_items.data(),
                       c_items.size(),
                       attempt};
    const kpihub_delivery d = to.deliver(batch);
    Delivered out;
    out.retry_after_ms = d.retry_after_ms;
    for (std::size_t i = 0; i < d.result_count; ++i) {
      const auto& r = d.results[i];
      out.results.push_back({r.outcome, std::string(r.code.data ? r.code.data : "", r.code.size),
                             std::string(r.message.data ? r.message.data : "", r.message.size)});
    }
    return out;
  }
  Delivered deliver(const std::string& batch_id, const std::vector<Item>& items) {
    return deliver(sink(), batch_id, items);
  }

  int64_t stat(const std::string& name) { return receiver_->stats().at(name).to_number<int64_t>(); }

  // The faults each following request gets, chosen by its path and key;
  // nullptr: the receiver's own faults.
  void set_faults_for_request(std::function<Faults(const SeenRequest&)> faults) {
    std::lock_guard lock(seen_mutex_);
    faults_for_request_ = std::move(faults);
  }

  std::vector<SeenRequest> seen(std::string_view path_suffix) {
    std::lock_guard lock(seen_mutex_);
    std::vector<SeenRequest> out;
    for (const auto& s : seen_) {
      if (s.path.ends_with(path_suffix)) out.push_back(s);
    }
    return out;
  }

  // An operator's check over HTTP: fetch a token, then GET.
  kpihub::net::Response http_get(const std::string& target) {
    kpihub::net::HttpClient client({});
    const auto token = client.request(
        "POST", receiver_->base_url() + "/oauth2/token",
        {{"Content-Type", "application/x-www-form-urlencoded"}},
        "grant_type=client_credentials&client_id=" + kpihub::net::url_encode(kClientId) +
            "&client_secret=" + kpihub::net::url_encode(kClientSecret));
    const std::string access = std::string(json::parse(token.body).at("access_token").as_string());
    return client.request("GET", receiver_->base_url() + target,
                          {{"Authorization", "Bearer " + access}});
  }

  fs::path dir_;
  ReceiverOptions options_;
  std::atomic<int64_t> receiver_clock_ms_{1'744'189'200'000};
  std::unique_ptr<Receiver> receiver_;
  ManualClock clock_;
  MapSecrets secrets_;
  CapturingLogger logger_;
  kpihub::Metrics metrics_;
  std::vector<std::unique_ptr<kpihub::PluginInstance>> sinks_;
  std::mutex seen_mutex_;
  std::vector<SeenRequest> seen_;
  std::function<Faults(const SeenRequest&)> faults_for_request_;
};

// A mixed batch's months request is answered 503; everything else is taken.
Faults unavailable_for_months(const SeenRequest& request) {
  Faults faults;
  if (request.path.ends_with("months:batch")) {
    faults.fail_503 = 1.0;
    faults.retry_after_seconds = 3;
  }
  return faults;
}

std::vector<std::string> keys_of(const std::vector<SeenRequest>& requests) {
  std::vector<std::string> keys;
  for (const auto& r : requests) keys.push_back(r.idempotency_key);
  return keys;
}

TEST_F(ProvincialTest, CleanDeliveryKeepsTheHighestRevisionAndSequence) {
  start_receiver();
  const Delivered first =
      deliver("b-1", {record_item("eoffice:WD-1", 3, 1), record_item("eoffice:WD-2", 1, 1)});
  EXPECT_EQ(first.count(KPIHUB_ITEM_DELIVERED), 2u);

  // Later but older: a lower revision must not replace; a rescore (same
  // revision, higher sequence) must.
  const Delivered second =
      deliver("b-2", {record_item("eoffice:WD-1", 2, 9), record_item("eoffice:WD-2", 1, 2)});
  EXPECT_EQ(second.count(KPIHUB_ITEM_DELIVERED), 2u);

  const auto wd1 = receiver_->record("eoffice:WD-1");
  ASSERT_TRUE(wd1);
  EXPECT_EQ(wd1->revision, 3);
  EXPECT_EQ(wd1->sequence, 1);
  const auto wd2 = receiver_->record("eoffice:WD-2");
  ASSERT_TRUE(wd2);
  EXPECT_EQ(wd2->sequence, 2);
  EXPECT_EQ(stat("records"), 2);
  EXPECT_EQ(stat("revisions_received"), 4);
  EXPECT_EQ(stat("batches"), 2);
  EXPECT_THAT(metrics_.prometheus_text(),
              HasSubstr("kpihub_provincial_items_total{outcome=\"delivered\",sink=\"province\"}"));
}

TEST_F(ProvincialTest, ReadBackDecodesRecordIdsWithColonAndBar) {
  start_receiver();
  ASSERT_EQ(deliver("b-1", {record_item("health:BV|2025|77", 1, 1)}).count(KPIHUB_ITEM_DELIVERED),
            1u);
  const auto found =
      http_get("/api/v1/kpi/records/" + kpihub::net::url_encode("health:BV|2025|77"));
  ASSERT_EQ(found.status, 200) << found.body;
  EXPECT_EQ(json::parse(found.body).at("record_id").as_string(), "health:BV|2025|77");
  EXPECT_EQ(http_get("/api/v1/kpi/records/" + kpihub::net::url_encode("health:none")).status, 404);
}

TEST_F(ProvincialTest, RetractedRecordIsWithdrawnAndStaysWithdrawn) {
  start_receiver();
  deliver("b-1", {record_item("eoffice:WD-9", 1, 1)});
  ASSERT_EQ(stat("records"), 1);
  EXPECT_EQ(deliver("b-2", {record_item("eoffice:WD-9", 2, 2, true)}).count(KPIHUB_ITEM_DELIVERED),
            1u);
  EXPECT_EQ(stat("records"), 0);
  EXPECT_EQ(http_get("/api/v1/kpi/records/eoffice%3AWD-9").status, 404);
  // An older version arriving late does not bring it back.
  deliver("b-3", {record_item("eoffice:WD-9", 1, 3)});
  EXPECT_EQ(stat("records"), 0);
  EXPECT_TRUE(receiver_->record("eoffice:WD-9")->retracted);
}

TEST_F(ProvincialTest, SameBatchTwiceIsReplayedWithByteIdenticalBodies) {
  start_receiver();
  const auto items = records("eoffice:R-", 5);
  EXPECT_EQ(deliver("b-same", items).count(KPIHUB_ITEM_DELIVERED), 5u);
  EXPECT_EQ(deliver(sink(), "b-same", items, 2).count(KPIHUB_ITEM_DELIVERED), 5u);

  const auto sent = seen("records:batch");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].idempotency_key, "b-same");
  EXPECT_EQ(sent[0].body, sent[1].body);
  // The items are spliced verbatim, in order.
  EXPECT_THAT(sent[0].body, HasSubstr(items[0].json + "," + items[1].json));
  EXPECT_EQ(stat("batches"), 1);
  EXPECT_EQ(stat("duplicate_batches"), 1);
  EXPECT_EQ(stat("revisions_received"), 5);
}

TEST_F(ProvincialTest, SameBatchIdWithAnotherBodyIsAnIdempotencyConflict) {
  start_receiver();
  deliver("b-x", records("eoffice:A-", 2));
  const Delivered conflict = deliver("b-x", records("eoffice:B-", 2));
  ASSERT_EQ(conflict.count(KPIHUB_ITEM_REJECTED), 2u);
  EXPECT_EQ(conflict.results[0].code, "idempotency_conflict");
  EXPECT_THAT(conflict.results[0].message, HasSubstr("client bug"));
  EXPECT_EQ(stat("conflicts_409"), 1);
  EXPECT_FALSE(receiver_->record("eoffice:B-0"));
}

TEST_F(ProvincialTest, OneUnreadableRecordInEightIsIsolatedBySplitting) {
  start_receiver();
  auto items = records("eoffice:S-", 8);
  items[5].json =
      R"({"record_id": "eoffice:S-5", "revision": )";  // truncated: the body is not JSON
  const Delivered d = deliver("b-split", items);
  EXPECT_EQ(d.count(KPIHUB_ITEM_DELIVERED), 7u);
  ASSERT_EQ(d.results[5].outcome, KPIHUB_ITEM_REJECTED);
  EXPECT_EQ(d.results[5].code, "bad_request");
  EXPECT_THAT(d.results[5].message, HasSubstr("not valid JSON"));
  EXPECT_EQ(stat("records"), 7);

  std::vector<std::string> keys;
  for (const auto& s : seen("records:batch")) keys.push_back(s.idempotency_key);
  EXPECT_THAT(keys, ::testing::ElementsAre("b-split", "b-split/0", "b-split/1", "b-split/1/0",
                                           "b-split/1/0/0", "b-split/1/0/1", "b-split/1/1"));
}

TEST_F(ProvincialTest, ReceiverRejectionsComeBackPerItemWithCodeAndMessage) {
  options_.poison_record_ids = {"eoffice:P-1"};
  start_receiver();
  Item no_sequence = record_item("eoffice:P-2", 1, 1);
  no_sequence.json =
      R"({"record_id":"eoffice:P-2","revision":1,"staff_code":"KH-1","work_date":"2025-04-01"})";
  const Delivered d = deliver("b-poison", {record_item("eoffice:P-0", 1, 1),
                                           record_item("eoffice:P-1", 1, 1), no_sequence});
  EXPECT_EQ(d.results[0].outcome, KPIHUB_ITEM_DELIVERED);
  ASSERT_EQ(d.results[1].outcome, KPIHUB_ITEM_REJECTED);
  EXPECT_EQ(d.results[1].code, "poison");
  EXPECT_THAT(d.results[1].message, HasSubstr("eoffice:P-1"));
  ASSERT_EQ(d.results[2].outcome, KPIHUB_ITEM_REJECTED);
  EXPECT_EQ(d.results[2].code, "missing_field");
  EXPECT_THAT(d.results[2].message, HasSubstr("scoring.sequence"));
}

TEST_F(ProvincialTest, OversizedBatchIsSplitAndAnOversizedItemIsRejected) {
  options_.max_body_bytes = 4096;
  start_receiver();
  std::vector<Item> items;
  for (int i = 0; i < 8; ++i) {
    const std::string id = "eoffice:L-" + std::to_string(i);
    items.push_back({KPIHUB_ITEM_RECORD, id, record_json(id, 1, 1, false, std::string(900, 'x'))});
  }
  const std::string huge_id = "eoffice:L-huge";
  items.push_back(
      {KPIHUB_ITEM_RECORD, huge_id, record_json(huge_id, 1, 1, false, std::string(5000, 'y'))});
  const Delivered d = deliver("b-large", items);
  EXPECT_EQ(d.count(KPIHUB_ITEM_DELIVERED), 8u);
  ASSERT_EQ(d.results[8].outcome, KPIHUB_ITEM_REJECTED);
  EXPECT_EQ(d.results[8].code, "too_large");
  EXPECT_EQ(stat("records"), 8);
}

TEST_F(ProvincialTest, TooManyRequestsAsksForRetryAfterTheServersDelay) {
  start_receiver();
  Faults overloaded;
  overloaded.fail_429 = 1.0;
  overloaded.retry_after_seconds = 7;
  receiver_->set_faults(overloaded);
  const Delivered d = deliver("b-429", records("eoffice:T-", 3));
  EXPECT_EQ(d.count(KPIHUB_ITEM_RETRY), 3u);
  EXPECT_EQ(d.retry_after_ms, 7000u);
  EXPECT_THAT(d.results[0].message, HasSubstr("429"));

  receiver_->set_faults({});
  EXPECT_EQ(deliver(sink(), "b-429", records("eoffice:T-", 3), 2).count(KPIHUB_ITEM_DELIVERED), 3u);
}

TEST_F(ProvincialTest, UnavailableAndServerErrorsAreRetried) {
  start_receiver();
  Faults unavailable;
  unavailable.fail_503 = 1.0;
  unavailable.retry_after_seconds = 2;
  receiver_->set_faults(unavailable);
  const Delivered d503 = deliver("b-503", records("eoffice:U-", 2));
  EXPECT_EQ(d503.count(KPIHUB_ITEM_RETRY), 2u);
  EXPECT_EQ(d503.retry_after_ms, 2000u);

  Faults broken;
  broken.fail_500 = 1.0;
  receiver_->set_faults(broken);
  EXPECT_EQ(deliver("b-500", records("eoffice:U-", 2)).count(KPIHUB_ITEM_RETRY), 2u);

  Faults dropping;
  dropping.drop = 1.0;
  receiver_->set_faults(dropping);
  EXPECT_EQ(deliver("b-drop", records("eoffice:U-", 2)).count(KPIHUB_ITEM_RETRY), 2u);
  EXPECT_EQ(stat("records"), 0);
}

TEST_F(ProvincialTest, ConnectionRefusedIsRetried) {
  start_receiver();
  sink();  // created while the receiver runs; it does not call it yet
  receiver_->stop();
  const Delivered d = deliver("b-down", records("eoffice:D-", 2));
  EXPECT_EQ(d.count(KPIHUB_ITEM_RETRY), 2u);
  EXPECT_FALSE(d.results[0].message.empty());
}

TEST_F(ProvincialTest, TokenExpiredEarlyIsRenewedOnceAndTheCallRepeated) {
  options_.token_ttl_seconds = 60;
  start_receiver();
  deliver("b-t1", records("eoffice:K-", 1));
  EXPECT_EQ(stat("tokens_issued"), 1);

  // The receiver's clock runs ahead: the token the sink still trusts is dead.
  receiver_clock_ms_ += 61'000;
  EXPECT_EQ(deliver("b-t2", records("eoffice:K2-", 1)).count(KPIHUB_ITEM_DELIVERED), 1u);
  EXPECT_EQ(stat("tokens_issued"), 2);
  EXPECT_EQ(seen("records:batch").size(), 3u);  // b-t1, b-t2 refused, b-t2 repeated

  // The sink's own clock passes the token's life (minus margin): it renews
  // before sending, without a refused call.
  clock_.advance_ms(55'000);
  receiver_clock_ms_ += 55'000;
  EXPECT_EQ(deliver("b-t3", records("eoffice:K3-", 1)).count(KPIHUB_ITEM_DELIVERED), 1u);
  EXPECT_EQ(stat("tokens_issued"), 3);
  EXPECT_EQ(seen("records:batch").size(), 4u);
}

TEST_F(ProvincialTest, WrongClientSecretIsAnAuthErrorNamingTheTokenUrl) {
  start_receiver();
  secrets_.values["env:WRONG"] = "not-the-secret";
  auto& wrong = make_sink(settings({{"client_secret_env", "WRONG"}}));
  try {
    deliver(wrong, "b-auth", records("eoffice:W-", 1));
    FAIL() << "deliver with a wrong secret succeeded";
  } catch (const kpihub::PluginError& e) {
    EXPECT_EQ(e.status(), KPIHUB_ERR_AUTH);
    EXPECT_THAT(e.what(), HasSubstr(receiver_->base_url() + "/oauth2/token"));
    EXPECT_THAT(e.what(), HasSubstr("check client_id"));
    EXPECT_THAT(e.what(), ::testing::Not(HasSubstr("not-the-secret")));
  }
}

TEST_F(ProvincialTest, BasicAuthenticationAtTheTokenEndpointWorks) {
  start_receiver();
  auto& basic = make_sink(settings({{"auth", "basic"}}));
  EXPECT_EQ(deliver(basic, "b-basic", records("eoffice:B-", 2)).count(KPIHUB_ITEM_DELIVERED), 2u);
  const auto token_requests = seen("/oauth2/token");
  ASSERT_EQ(token_requests.size(), 1u);
  EXPECT_THAT(token_requests[0].body, ::testing::Not(HasSubstr("client_secret")));
}

TEST_F(ProvincialTest, SettingsAreCheckedAtCreation) {
  start_receiver();
  const auto refusal = [&](const json::object& s) -> std::string {
    try {
      make_sink(s);
    } catch (const kpihub::PluginError& e) {
      EXPECT_EQ(e.status(), KPIHUB_ERR_CONFIG);
      return e.what();
    }
    return "accepted";
  };
  EXPECT_THAT(refusal(settings({{"recordz_path", "/x"}})),
              HasSubstr("recordz_path: unknown setting"));
  EXPECT_THAT(refusal(settings({{"client_secret_file", "/run/secret"}})), HasSubstr("exactly one"));
  EXPECT_THAT(refusal(settings({{"auth", "digest"}})), HasSubstr("auth"));
  EXPECT_THAT(refusal(settings({{"client_secret_env", "UNSET_VARIABLE"}})),
              HasSubstr("UNSET_VARIABLE"));
  EXPECT_THAT(refusal(settings({{"client_cert_file", kTls + "client.pem"}})),
              HasSubstr("client_key_file"));
}

TEST_F(ProvincialTest, ReceiverRestartKeepsDataAndIdempotencyKeys) {
  start_receiver();
  const auto items = records("eoffice:Z-", 3);
  deliver("b-keep", items);
  restart_receiver();  // also forgets the sink's token: invalid_token, renewed
  EXPECT_EQ(stat("records"), 3);
  EXPECT_EQ(deliver(sink(), "b-keep", items, 2).count(KPIHUB_ITEM_DELIVERED), 3u);
  EXPECT_EQ(stat("duplicate_batches"), 1);
  EXPECT_EQ(stat("batches"), 1);
  EXPECT_EQ(deliver("b-keep", records("eoffice:Y-", 3)).results[0].code, "idempotency_conflict");
}

// A receiver database written before the store's layout changed (records in
// a rowid table, WAL journal, 4 KiB pages) is opened and used as it is: what
// it held is read back, a newer revision replaces it, an older does not.
TEST_F(ProvincialTest, ReceiverKeepsUsingADatabaseOfTheEarlierLayout) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(options_.db_path.c_str(), &db), SQLITE_OK);
  const std::string held = record_json("eoffice:OLD-1", 2, 1);
  const std::string earlier =
      "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;"
      "CREATE TABLE records (record_id TEXT PRIMARY KEY, revision INTEGER NOT NULL,"
      " sequence INTEGER NOT NULL, retracted INTEGER NOT NULL, body TEXT NOT NULL);"
      "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
      "INSERT INTO counters VALUES ('batches', 1), ('revisions_received', 1);"
      "INSERT INTO records VALUES ('eoffice:OLD-1', 2, 1, 0, '" +
      held + "');";
  ASSERT_EQ(sqlite3_exec(db, earlier.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  start_receiver();
  const auto old = receiver_->record("eoffice:OLD-1");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->json, held);
  EXPECT_EQ(stat("batches"), 1);
  EXPECT_EQ(
      deliver("b-new", {record_item("eoffice:OLD-1", 1, 5), record_item("eoffice:NEW-1", 1, 1)})
          .count(KPIHUB_ITEM_DELIVERED),
      2u);
  EXPECT_EQ(receiver_->record("eoffice:OLD-1")->revision, 2) << "an older revision replaced it";
  deliver("b-newer", {record_item("eoffice:OLD-1", 3, 1)});
  EXPECT_EQ(receiver_->record("eoffice:OLD-1")->revision, 3);
  EXPECT_EQ(stat("records"), 2);
  EXPECT_EQ(stat("batches"), 3);
  EXPECT_EQ(stat("revisions_received"), 4);

  restart_receiver();
  EXPECT_EQ(receiver_->record("eoffice:OLD-1")->revision, 3);
  EXPECT_EQ(json::parse(receiver_->record("eoffice:NEW-1")->json),
            json::parse(record_json("eoffice:NEW-1", 1, 1)));
}

TEST_F(ProvincialTest, MonthlySummariesGoToTheMonthsEndpoint) {
  start_receiver();
  Item bad = staff_month_item("KH-2", 1);
  bad.json = R"({"month":"2025-04","staff_code":"KH-2","revision":"four"})";
  const Delivered d =
      deliver("b-m", {staff_month_item("KH-1", 2), agency_month_item("000.00.12.H34", 9), bad});
  EXPECT_EQ(d.results[0].outcome, KPIHUB_ITEM_DELIVERED);
  EXPECT_EQ(d.results[1].outcome, KPIHUB_ITEM_DELIVERED);
  ASSERT_EQ(d.results[2].outcome, KPIHUB_ITEM_REJECTED);
  EXPECT_EQ(d.results[2].code, "bad_value");

  deliver("b-m2", {staff_month_item("KH-1", 1)});  // older revision: ignored
  const auto got = http_get("/api/v1/kpi/months?month=2025-04&agency_code=000.00.12.H34");
  ASSERT_EQ(got.status, 200) << got.body;
  const auto answer = json::parse(got.body).as_object();
  ASSERT_EQ(answer.at("staff_months").as_array().size(), 1u);
  EXPECT_EQ(answer.at("staff_months").as_array()[0].at("revision").as_int64(), 2);
  EXPECT_EQ(answer.at("agency_months").as_array().size(), 1u);
  EXPECT_EQ(receiver_->stats().at("months").at("staff").as_int64(), 1);
}

TEST_F(ProvincialTest, MixedBatchIsSentAsTwoRequestsWithDerivedIds) {
  start_receiver();
  const Delivered d =
      deliver("b-mixed", {record_item("eoffice:M-1", 1, 1), staff_month_item("KH-1", 1),
                          record_item("eoffice:M-2", 1, 1)});
  EXPECT_EQ(d.count(KPIHUB_ITEM_DELIVERED), 3u);
  ASSERT_EQ(seen("records:batch").size(), 1u);
  EXPECT_EQ(seen("records:batch")[0].idempotency_key, "b-mixed:records");
  ASSERT_EQ(seen("months:batch").size(), 1u);
  EXPECT_EQ(seen("months:batch")[0].idempotency_key, "b-mixed:months");
  EXPECT_THAT(seen("months:batch")[0].body, HasSubstr("\"agency_months\":[]"));
}

TEST_F(ProvincialTest, HttpsWithTheTestCaDelivers) {
  options_.tls_cert_file = kTls + "server.pem";
  options_.tls_key_file = kTls + "server.key";
  start_receiver();
  auto& tls = make_sink(settings({{"ca_file", kTls + "ca.pem"}}));
  EXPECT_EQ(deliver(tls, "b-tls", records("eoffice:H-", 2)).count(KPIHUB_ITEM_DELIVERED), 2u);
}

TEST_F(ProvincialTest, HttpsWithTheWrongCaIsRefusedAsConfiguration) {
  options_.tls_cert_file = kTls + "server.pem";
  options_.tls_key_file = kTls + "server.key";
  start_receiver();
  auto& wrong_ca = make_sink(settings({{"ca_file", kTls + "other-ca.pem"}}));
  try {
    deliver(wrong_ca, "b-wrong-ca", records("eoffice:H-", 1));
    FAIL() << "a server signed by an untrusted CA was accepted";
  } catch (const kpihub::PluginError& e) {
    EXPECT_EQ(e.status(), KPIHUB_ERR_CONFIG);
    EXPECT_THAT(e.what(), HasSubstr("certificate"));
  }
  EXPECT_EQ(stat("records"), 0);
}

TEST_F(ProvincialTest, MutualTlsNeedsTheClientCertificate) {
  options_.tls_cert_file = kTls + "server.pem";
  options_.tls_key_file = kTls + "server.key";
  options_.client_ca_file = kTls + "ca.pem";
  start_receiver();
  auto& with_cert = make_sink(settings({{"ca_file", kTls + "ca.pem"},
                                        {"client_cert_file", kTls + "client.pem"},
                                        {"client_key_file", kTls + "client.key"}}));
  EXPECT_EQ(deliver(with_cert, "b-mtls", records("eoffice:C-", 1)).count(KPIHUB_ITEM_DELIVERED),
            1u);

  auto& without_cert = make_sink(settings({{"ca_file", kTls + "ca.pem"}}));
  bool refused = false;
  try {
    refused =
        deliver(without_cert, "b-mtls-2", records("eoffice:C2-", 1)).count(KPIHUB_ITEM_DELIVERED) ==
        0;
  } catch (const kpihub::PluginError&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
  EXPECT_FALSE(receiver_->record("eoffice:C2-0"));
}

TEST_F(ProvincialTest, RetryResendsOnlyTheRequestsWithoutAFinalAnswer) {
  options_.poison_record_ids = {"eoffice:P-2"};
  start_receiver();
  const std::vector<Item> items = {record_item("eoffice:P-1", 1, 1), staff_month_item("KH-1", 1),
                                   record_item("eoffice:P-2", 1, 1),
                                   agency_month_item("000.00.12.H34", 1)};
  set_faults_for_request(unavailable_for_months);
  const Delivered first = deliver(sink(), "b-part", items, 1);
  EXPECT_EQ(first.results[0].outcome, KPIHUB_ITEM_DELIVERED);
  EXPECT_EQ(first.results[1].outcome, KPIHUB_ITEM_RETRY);
  EXPECT_EQ(first.results[2].code, "poison");
  EXPECT_EQ(first.results[3].outcome, KPIHUB_ITEM_RETRY);
  EXPECT_EQ(first.retry_after_ms, 3000u);

  set_faults_for_request(nullptr);
  receiver_->set_faults({});
  const Delivered retry = deliver(sink(), "b-part", items, 2);
  EXPECT_EQ(retry.count(KPIHUB_ITEM_DELIVERED), 3u);
  EXPECT_EQ(retry.retry_after_ms, 0u);
  // The records' answer of the first attempt, rejection included.
  ASSERT_EQ(retry.results[2].outcome, KPIHUB_ITEM_REJECTED);
  EXPECT_EQ(retry.results[2].code, "poison");
  EXPECT_THAT(retry.results[2].message, HasSubstr("eoffice:P-2"));

  // The records went once; the months twice (refused, then taken).
  EXPECT_THAT(keys_of(seen("records:batch")), ::testing::ElementsAre("b-part:records"));
  EXPECT_THAT(keys_of(seen("months:batch")),
              ::testing::ElementsAre("b-part:months", "b-part:months"));
  EXPECT_EQ(stat("batches"), 2);
  EXPECT_EQ(stat("duplicate_batches"), 0);
  EXPECT_EQ(stat("conflicts_409"), 0);
  EXPECT_EQ(metrics_.get("kpihub_provincial_requests_reused_total", {{"sink", "province"}}), 1.0);
  // Settled: nothing of it is remembered any more.
  EXPECT_EQ(metrics_.get("kpihub_provincial_remembered_batches", {{"sink", "province"}}), 0.0);
}

TEST_F(ProvincialTest, RetryOfASplitBatchResendsOnlyTheHalfStillOpen) {
  start_receiver();
  auto items = records("eoffice:S-", 8);
  items[5].json = R"({"record_id": "eoffice:S-5", "revision": )";  // not JSON: 400, split
  set_faults_for_request([](const SeenRequest& request) {
    Faults faults;
    if (request.idempotency_key == "b-half/1") faults.fail_500 = 1.0;
    return faults;
  });
  const Delivered first = deliver(sink(), "b-half", items, 1);
  EXPECT_EQ(first.count(KPIHUB_ITEM_DELIVERED), 4u);  // b-half/0
  EXPECT_EQ(first.count(KPIHUB_ITEM_RETRY), 4u);
  EXPECT_THAT(keys_of(seen("records:batch")),
              ::testing::ElementsAre("b-half", "b-half/0", "b-half/1"));

  set_faults_for_request(nullptr);
  receiver_->set_faults({});
  const Delivered retry = deliver(sink(), "b-half", items, 2);
  EXPECT_EQ(retry.count(KPIHUB_ITEM_DELIVERED), 7u);
  ASSERT_EQ(retry.results[5].outcome, KPIHUB_ITEM_REJECTED);
  EXPECT_EQ(retry.results[5].code, "bad_request");
  // Neither the whole (refused as such before) nor the half already taken
  // is sent again; the open half is split as it would have been.
  EXPECT_THAT(keys_of(seen("records:batch")),
              ::testing::ElementsAre("b-half", "b-half/0", "b-half/1", "b-half/1", "b-half/1/0",
                                     "b-half/1/0/0", "b-half/1/0/1", "b-half/1/1"));
  EXPECT_EQ(stat("records"), 7);
  EXPECT_EQ(stat("duplicate_batches"), 0);
  EXPECT_EQ(stat("conflicts_409"), 0);
}

TEST_F(ProvincialTest, FirstAttemptDoesNotTrustAnswersKeptForTheSameBatchId) {
  start_receiver();
  const std::vector<Item> items = {record_item("eoffice:F-1", 1, 1), staff_month_item("KH-1", 1)};
  set_faults_for_request(unavailable_for_months);
  deliver(sink(), "b-first", items, 1);
  deliver(sink(), "b-first", items, 1);
  EXPECT_EQ(seen("records:batch").size(), 2u);
  EXPECT_EQ(stat("duplicate_batches"), 1);  // the receiver replayed the second
}

TEST_F(ProvincialTest, RememberedBatchesStayWithinTheCap) {
  constexpr std::size_t kCap = kpihub::provincial::SettledRequests::kDefaultMaxBatches;
  start_receiver();
  set_faults_for_request(unavailable_for_months);
  const auto remembered = [&] {
    return metrics_.get("kpihub_provincial_remembered_batches", {{"sink", "province"}});
  };
  const auto batch = [](std::size_t n) {
    const std::string id = "b-open-" + std::to_string(n);
    return std::pair{id, std::vector<Item>{record_item("eoffice:" + id, 1, 1),
                                           staff_month_item("KH-" + std::to_string(n), 1)}};
  };
  // Batches whose months never go through, and that are never finished.
  const std::size_t opened = 2 * kCap + 3;
  for (std::size_t n = 0; n < opened; ++n) {
    const auto [id, items] = batch(n);
    ASSERT_EQ(deliver(sink(), id, items, 1).count(KPIHUB_ITEM_RETRY), 1u);
    ASSERT_LE(remembered(), static_cast<double>(kCap));
  }
  EXPECT_EQ(remembered(), static_cast<double>(kCap));

  set_faults_for_request(nullptr);
  receiver_->set_faults({});
  // The newest is still remembered: its records are not resent.
  {
    const auto [id, items] = batch(opened - 1);
    EXPECT_EQ(deliver(sink(), id, items, 2).count(KPIHUB_ITEM_DELIVERED), 2u);
  }
  EXPECT_EQ(stat("duplicate_batches"), 0);
  EXPECT_EQ(remembered(), static_cast<double>(kCap - 1));  // finished, so forgotten
  // The oldest was forgotten: its retry resends the records, which the
  // receiver replays; the outcome is the same.
  {
    const auto [id, items] = batch(0);
    EXPECT_EQ(deliver(sink(), id, items, 2).count(KPIHUB_ITEM_DELIVERED), 2u);
  }
  EXPECT_EQ(stat("duplicate_batches"), 1);
  EXPECT_EQ(stat("conflicts_409"), 0);
  EXPECT_EQ(remembered(), static_cast<double>(kCap - 1));
}

TEST(SettledRequests, ForgetsTheLeastRecentlyUsedBatchBeyondTheCap) {
  kpihub::provincial::SettledRequests settled(3);
  settled.of_batch("a")["a"].body_hash = 1;
  settled.of_batch("b")["b"].body_hash = 2;
  settled.of_batch("c")["c"].body_hash = 3;
  EXPECT_EQ(settled.of_batch("a").count("a"), 1u);  // used: "b" is now the oldest
  settled.of_batch("d");
  EXPECT_EQ(settled.batch_count(), 3u);
  EXPECT_TRUE(settled.of_batch("b").empty());  // forgotten; now "c" went instead
  EXPECT_EQ(settled.of_batch("a").count("a"), 1u);
  EXPECT_EQ(settled.batch_count(), 3u);
  settled.forget("a");
  settled.forget("unknown");
  EXPECT_EQ(settled.batch_count(), 2u);
}

// ------------------------------------------------ receiver on its own -----

TEST_F(ProvincialTest, ReceiverAnswersBadBodiesWith400AndNeedsAToken) {
  start_receiver();
  kpihub::net::HttpClient client({});
  const auto url = receiver_->base_url() + "/api/v1/kpi/records:batch";
  const auto no_token = client.request("POST", url, {{"Idempotency-Key", "k"}}, "{}");
  EXPECT_EQ(no_token.status, 401);

  const auto token =
      json::parse(client
                      .request("POST", receiver_->base_url() + "/oauth2/token", {},
                               "grant_type=client_credentials&client_id=hub-test&client_secret=" +
                                   kpihub::net::url_encode(kClientSecret))
                      .body);
  const std::string bearer = "Bearer " + std::string(token.at("access_token").as_string());
  const auto not_json =
      client.request("POST", url, {{"Authorization", bearer}, {"Idempotency-Key", "k1"}}, "{oops");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_THAT(json::parse(not_json.body).at("error").as_string().c_str(),
              HasSubstr("not valid JSON"));
  const auto not_batch =
      client.request("POST", url, {{"Authorization", bearer}, {"Idempotency-Key", "k2"}},
                     R"({"hub_id":"h","batch_id":"k2"})");
  EXPECT_EQ(not_batch.status, 400);
  const auto no_key = client.request("POST", url, {{"Authorization", bearer}},
                                     R"({"hub_id":"h","batch_id":"k3","records":[]})");
  EXPECT_EQ(no_key.status, 400);
}

// The receiver keeps a record's text as it came (spaces, number spellings) and
// reads it back so; a body with an invalid value anywhere, even deep inside a
// record, is still refused whole.
TEST_F(ProvincialTest, ReceiverKeepsTheTextAsSentAndRefusesAnInvalidValueAnywhere) {
  start_receiver();
  kpihub::net::HttpClient client({});
  const auto token =
      json::parse(client
                      .request("POST", receiver_->base_url() + "/oauth2/token", {},
                               "grant_type=client_credentials&client_id=hub-test&client_secret=" +
                                   kpihub::net::url_encode(kClientSecret))
                      .body);
  const std::string bearer = "Bearer " + std::string(token.at("access_token").as_string());
  const auto post = [&](const std::string& key, const std::string& body) {
    return client.request("POST", receiver_->base_url() + "/api/v1/kpi/records:batch",
                          {{"Authorization", bearer}, {"Idempotency-Key", key}}, body);
  };
  const std::string record =
      R"({ "record_id": "eoffice:AS-1", "revision": 1, "staff_code": "KH-1",)"
      R"( "work_date": "2025-04-08", "title": "Xử lý \u0111ến",)"
      R"( "scoring": {"sequence": 1, "points": 2.50, "ratio": 1e2} })";
  const auto taken = post(
      "k-as-sent", R"({"hub_id": "h", "batch_id": "k-as-sent", "records": [ )" + record + " ]}");
  ASSERT_EQ(taken.status, 200) << taken.body;
  EXPECT_EQ(json::parse(taken.body).at("accepted").to_number<int64_t>(), 1);
  const auto read = http_get("/api/v1/kpi/records/eoffice:AS-1");
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(read.body, record);

  for (const std::string bad :
       {R"("points": 2.5.1)", R"("points": tru)", R"("title": "\x")", "\"title\": \"\xff\""}) {
    SCOPED_TRACE(bad);
    const auto refused = post(
        "k-bad-" + bad, R"({"hub_id":"h","batch_id":"b","records":[{"record_id":"eoffice:AS-2",)"
                        R"("revision":1,"staff_code":"KH-1","work_date":"2025-04-08",)"
                        R"("scoring":{"sequence":1,)" +
                            bad + "}}]}");
    EXPECT_EQ(refused.status, 400) << refused.body;
    EXPECT_THAT(refused.body, HasSubstr("not valid JSON"));
  }
  EXPECT_FALSE(receiver_->record("eoffice:AS-2"));
}

// ------------------------------------------------------- Retry-After -----

TEST(RetryAfter, ParsesSecondsAndTheThreeHttpDateForms) {
  using kpihub::provincial::parse_retry_after_ms;
  const int64_t now = 784'111'777'000;  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(parse_retry_after_ms("120", now), 120'000u);
  EXPECT_EQ(parse_retry_after_ms(" 0 ", now), 0u);
  EXPECT_EQ(parse_retry_after_ms("Sun, 06 Nov 1994 08:49:47 GMT", now), 10'000u);
  EXPECT_EQ(parse_retry_after_ms("Sunday, 06-Nov-94 08:50:37 GMT", now), 60'000u);
  EXPECT_EQ(parse_retry_after_ms("Sun Nov  6 08:49:40 1994", now), 3'000u);
  EXPECT_EQ(parse_retry_after_ms("Sat, 05 Nov 1994 08:49:37 GMT", now), 0u);  // in the past
  EXPECT_EQ(parse_retry_after_ms("99999999999", now), 3'600'000u);            // capped
  EXPECT_FALSE(parse_retry_after_ms("soon", now));
  EXPECT_FALSE(parse_retry_after_ms("-5", now));
  EXPECT_FALSE(parse_retry_after_ms("", now));
}

}  // namespace
