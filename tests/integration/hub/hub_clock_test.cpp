// The Hub in-process with a clock the test moves.
#include <kpihub/admin.hpp>
#include <kpihub/hub.hpp>
#include <kpihub_test/bundled_reference.hpp>
#include <kpihub_test/manual_clock.hpp>
#include <kpihub_test/store.hpp>

#include <gtest/gtest.h>

#include <unistd.h>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

using namespace kpihub;
namespace fs = std::filesystem;

namespace {

using test::ManualClock;

int64_t local_noon_ms(const char* date) {
  return (static_cast<int64_t>(Date::parse(date)->days) * 86400 + 12 * 3600 - 7 * 3600) * 1000;
}

// A fresh folder with the test plugins in plugins/.
fs::path hub_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "plugins");
  for (const char* plugin : {TEST_SOURCE_PLUGIN, TEST_SINK_PLUGIN}) {
    fs::copy_file(plugin, dir / "plugins" / fs::path(plugin).filename());
  }
  fs::create_directories(dir / "var");
  return dir;
}

// The hub in `dir` with one source: 28 records, one per day of April 2025 for KH-000123
// (every 7th is malformed).
HubConfig counting_hub(const fs::path& dir, const std::string& hub_id) {
  HubConfig config;
  config.hub_id = hub_id;
  config.base_dir = dir.string();
  config.data_dir = (dir / "var").string();
  config.plugin_dir = (dir / "plugins").string();
  PluginInstanceConfig source;
  source.name = "counting";
  source.plugin = "counting-source";
  source.settings_json =
      R"({"records": 28, "page_size": 28, "staff": ["KH-000123"], "month": "2025-04"})";
  config.sources.push_back(source);
  config.store_path = (dir / "var" / test::store_file_name(config.store)).string();
  return config;
}

// The store `config` names, on the default engine (its times from `clock`, nullptr: the system's).
std::unique_ptr<Storage> open_store(const HubConfig& config, const Clock* clock = nullptr) {
  test::TestStoreOptions options;
  options.clock = clock;
  return test::open_test_store(config.store, config.store_path, options);
}

using test::bundled_reference;

}  // namespace

// Regression: the hub's date was fixed when the hub started, so a hub running
// past midnight sent the following days' records to quarantine as future_date.
TEST(HubClock, TheHubsDateFollowsTheClockWhileItRuns) {
  const fs::path dir = hub_dir("kpihub-clock");
  const HubConfig config = counting_hub(dir, "clock-test");
  ReferenceData ref = bundled_reference();

  auto store = open_store(config);
  JsonLineLogger logger(stderr, LogLevel::error);
  Metrics metrics;
  ManualClock clock(local_noon_ms("2025-04-01"));
  Hub hub(config, *store, ref, logger, clock, metrics);
  ASSERT_TRUE(hub.start().empty());

  clock.set(local_noon_ms("2025-04-30"));  // the hub has been running for a month
  std::atomic<bool> stop{false};
  const RunSummary s = hub.run(stop, RunMode::once);
  EXPECT_TRUE(s.ok()) << s.line();
  EXPECT_EQ(s.inserted, 24u) << s.line();    // 28 minus the 4 malformed ones
  EXPECT_EQ(s.quarantined, 4u) << s.line();  // minutes out of range, not future dates
  const auto future = store->views().quarantine("counting", "future_date", 10, 0);
  EXPECT_TRUE(future.empty());
  store.reset();
  fs::remove_all(dir);
}

// Regression: with `today` set (a back-fill), a source's lag mixed the records' clock, moved
// to `today`, with the real one: 576 days of lag, so the documented lag alert always fired.
// What an operator reads (/metrics, /api/sources) is measured on the hub's one clock.
TEST(HubClock, SourceLagIsMeasuredOnTheHubsClockWhenTodayIsSet) {
  const fs::path dir = hub_dir("kpihub-lag");
  HubConfig config = counting_hub(dir, "lag-test");
  config.today = "2025-04-30";  // back-filling April 2025 on 7 November 2026
  ReferenceData ref = bundled_reference();

  auto store = open_store(config);
  JsonLineLogger logger(stderr, LogLevel::error);
  Metrics metrics;
  ManualClock clock(local_noon_ms("2026-11-07"));
  {
    Hub hub(config, *store, ref, logger, clock, metrics);
    ASSERT_TRUE(hub.start().empty());
    std::atomic<bool> stop{false};
    const RunSummary s = hub.run(stop, RunMode::once);
    ASSERT_TRUE(s.ok()) << s.line();
    ASSERT_EQ(s.inserted, 24u) << s.line();

    clock.set(local_noon_ms("2026-11-07") + 90'000);  // caught up 90 s ago
    LiveHubView view(hub);
    AdminApi api(config, *store, ref, metrics, view, clock, logger);
    net::Request request;
    request.method = "GET";
    request.path = request.target = "/metrics";
    request.remote = "127.0.0.1:1";
    const net::Reply scrape = api.handle(request);
    EXPECT_NE(scrape.body.find("kpihub_source_lag_seconds{source=\"counting\"} 90\n"),
              std::string::npos)
        << scrape.body;
    const auto sources = hub.source_status();
    ASSERT_EQ(sources.size(), 1u);
    EXPECT_EQ(sources[0].last_caught_up_ms, local_noon_ms("2026-11-07"));
    EXPECT_EQ(sources[0].last_success_ms, local_noon_ms("2026-11-07"));
  }
  store.reset();
  fs::remove_all(dir);
}

// A long-running hub does not keep every delivered item: 30 days (outbox_retention_days)
// after every sink delivered them, the outbox items go, a bounded transaction at a time.
TEST(HubClock, DeliveredOutboxItemsAreDeletedAfterTheRetentionDays) {
  const fs::path dir = hub_dir("kpihub-compact");
  const fs::path delivered = dir / "delivered.txt";
  HubConfig config = counting_hub(dir, "compact-test");
  config.outbox_retention_days = 30;
  PluginInstanceConfig sink;
  sink.name = "files";
  sink.plugin = "file-sink";
  sink.batch_max_items = 10;
  sink.settings_json = R"({"file": ")" + delivered.string() + R"("})";
  config.sinks.push_back(sink);
  // A sink switched off holds every item: it has delivered none of them.
  PluginInstanceConfig off = sink;
  off.name = "off";
  off.enabled = false;
  off.settings_json = R"({"file": ")" + (dir / "off.txt").string() + R"("})";
  HubConfig with_off = config;
  with_off.sinks.push_back(off);

  ReferenceData ref = bundled_reference();
  ref.rules.retention_days = 36500;  // April 2025 is still accepted with the real date

  // The hub and the store (which stamps deliveries) on one clock, starting at the real time.
  const int64_t real_now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  ManualClock clock(real_now);
  auto store = open_store(with_off, &clock);
  JsonLineLogger logger(stderr, LogLevel::error);
  Metrics metrics;
  auto hub = std::make_unique<Hub>(with_off, *store, ref, logger, clock, metrics);
  ASSERT_TRUE(hub->start().empty());
  std::atomic<bool> stop{false};

  RunSummary s = hub->run(stop, RunMode::once);
  ASSERT_TRUE(s.ok()) << s.line();
  EXPECT_EQ(s.outbox_compacted, 0u) << "delivered just now";
  std::size_t lines = 0;
  {
    std::ifstream in(delivered);
    for (std::string line; std::getline(in, line);) ++lines;
  }
  ASSERT_GT(lines, 24u);  // 24 records, their staff month and agency month

  clock.set(real_now + 31LL * 86400000);
  s = hub->run(stop, RunMode::once);
  EXPECT_EQ(s.outbox_compacted, 0u) << "the sink switched off has not delivered them";

  hub.reset();  // the sink switched off leaves the configuration (it never took a batch)
  hub = std::make_unique<Hub>(config, *store, ref, logger, clock, metrics);
  ASSERT_TRUE(hub->start().empty());
  clock.set(real_now + 29LL * 86400000);
  s = hub->run(stop, RunMode::once);
  EXPECT_EQ(s.outbox_compacted, 0u) << "29 days after delivery";

  clock.set(real_now + 31LL * 86400000);
  s = hub->run(stop, RunMode::once);
  ASSERT_TRUE(s.ok()) << s.line();
  EXPECT_EQ(s.outbox_compacted, lines);
  EXPECT_EQ(store->outbox().compact({"files"}, clock.now_unix_ms(), 1000), 0u);
  EXPECT_EQ(store->views().counts().outbox_pending, 0);
  store.reset();
  fs::remove_all(dir);
}
