// The Forwarder in-process, with a clock the test moves and the file sink
// answering only part of a batch per attempt: how long it waits between
// attempts.
#include <kpihub/host_services.hpp>
#include <kpihub/hub.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/metrics.hpp>
#include <kpihub/plugins.hpp>
#include <kpihub_test/manual_clock.hpp>
#include <kpihub_test/store.hpp>

#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <stdexcept>

using namespace kpihub;
namespace fs = std::filesystem;

namespace {

using test::ManualClock;

class NoSecrets final : public SecretResolver {
 public:
  std::string resolve(std::string_view reference) const override {
    throw std::runtime_error("no secret " + std::string(reference));
  }
};

constexpr int kItems = 4;

// On each store engine (ForwarderTest/sqlite, ForwarderTest/rocksdb).
class ForwarderTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');
    dir_ =
        fs::temp_directory_path() / ("kpihub-forwarder-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_ = test::open_test_store(GetParam(), dir_ / test::store_file_name(GetParam()));
    ScoringCommit commit;
    for (int i = 0; i < kItems; ++i) {
      const std::string key = "eoffice:R-" + std::to_string(i);
      commit.outbox.push_back({0, OutboxKind::record, key, R"({"record_id":")" + key + R"("})"});
    }
    store_->scoring().commit_scoring(commit);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }

  // Steps the forwarder until the batch is delivered or `max_attempts` were
  // made, moving the clock to each next attempt; the waits it chose.
  std::vector<int64_t> waits_until_delivered(const std::string& extra_settings, int max_attempts) {
    PluginInstanceConfig config;
    config.name = "files";
    config.plugin = "file-sink";
    config.settings_json =
        R"({"file": ")" + (dir_ / "delivered.tsv").string() + R"(")" + extra_settings + "}";
    PluginInstance sink(
        load_plugin(TEST_SINK_PLUGIN), config.name, config.settings_json,
        std::make_unique<HostServices>(config.name, logger_, clock_, secrets_, &metrics_));
    Forwarder forwarder(store_->outbox(), sink, config, "test-hub", clock_, logger_, metrics_);
    std::vector<int64_t> waits;
    for (int attempt = 1; attempt <= max_attempts; ++attempt) {
      const ForwardStep step = forwarder.step();
      if (step == ForwardStep::delivered) {
        delivered_ = true;
        break;
      }
      EXPECT_EQ(step, ForwardStep::deferred);
      waits.push_back(forwarder.next_attempt_ms() - clock_.now_unix_ms());
      clock_.set(forwarder.next_attempt_ms());
    }
    return waits;
  }

  fs::path dir_;
  std::unique_ptr<Storage> store_;
  ManualClock clock_{1'744'189'200'000};
  NoSecrets secrets_;
  JsonLineLogger logger_{stderr, LogLevel::error};
  Metrics metrics_;
  bool delivered_ = false;
};

INSTANTIATE_TEST_SUITE_P(Engines, ForwarderTest, ::testing::ValuesIn(test::store_engines()),
                         test::engine_name);

TEST_P(ForwarderTest, AnAttemptThatSettlesMoreItemsStartsTheBackoffAgain) {
  // One more item settled per attempt: attempts 1 to 3 each make progress.
  const auto waits =
      waits_until_delivered(R"(, "settled_items": 1, "settled_items_grow": true)", kItems + 1);
  EXPECT_TRUE(delivered_);
  ASSERT_EQ(waits.size(), 3u);
  for (const int64_t wait : waits) {
    // The first step of the backoff (drawn from 0.5–1 s), not 1–2 s and 2–4 s.
    EXPECT_GE(wait, 500);
    EXPECT_LE(wait, 1000);
  }
}

TEST_P(ForwarderTest, AnAttemptThatSettlesTheSameItemsAgainBacksOffFurther) {
  // The same first item settled every time: only the first attempt is progress.
  const auto waits = waits_until_delivered(R"(, "settled_items": 1)", 4);
  EXPECT_FALSE(delivered_);
  ASSERT_EQ(waits.size(), 4u);
  for (std::size_t i = 0; i < waits.size(); ++i) {
    const int64_t step_ms = 1000LL << i;  // 1, 2, 4, 8 s, each drawn from its upper half
    EXPECT_GE(waits[i], step_ms / 2) << "attempt " << i + 1;
    EXPECT_LE(waits[i], step_ms) << "attempt " << i + 1;
  }
}

}  // namespace
