// The Hub in-process with a clock the test moves.
#include <kpihub/hub.hpp>
#include <kpihub_test/manual_clock.hpp>

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>

using namespace kpihub;
namespace fs = std::filesystem;

namespace {

using test::ManualClock;

int64_t local_noon_ms(const char* date) {
  return (static_cast<int64_t>(Date::parse(date)->days) * 86400 + 12 * 3600 - 7 * 3600) * 1000;
}

}  // namespace

// Regression: the hub's date was fixed when the hub started, so a hub running
// past midnight sent the following days' records to quarantine as future_date.
TEST(HubClock, TheHubsDateFollowsTheClockWhileItRuns) {
  const fs::path dir = fs::temp_directory_path() / ("kpihub-clock-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "plugins");
  fs::copy_file(TEST_SOURCE_PLUGIN, dir / "plugins" / fs::path(TEST_SOURCE_PLUGIN).filename());
  const std::string config_dir = std::string(KPIHUB_SOURCE_DIR) + "/config";

  HubConfig config;
  config.hub_id = "clock-test";
  config.base_dir = dir.string();
  config.data_dir = (dir / "var").string();
  config.plugin_dir = (dir / "plugins").string();
  PluginInstanceConfig source;
  source.name = "counting";
  source.plugin = "counting-source";
  // 28 records, one per day of April 2025 (every 7th is malformed).
  source.settings_json =
      R"({"records": 28, "page_size": 28, "staff": ["KH-000123"], "month": "2025-04"})";
  config.sources.push_back(source);

  ReferenceData ref;
  ref.catalog = load_catalog({config_dir + "/catalog/province.csv"});
  ref.directory = load_directory(config_dir + "/staff.csv", config_dir + "/units.csv");
  ref.holidays = load_holidays({config_dir + "/holidays/2025.csv"});
  ref.rules = load_rules(config_dir + "/rules.json");

  fs::create_directories(config.data_dir);
  auto store = open_sqlite_store((dir / "var/hub.db").string());
  JsonLineLogger logger(stderr, LogLevel::error);
  Metrics metrics;
  ManualClock clock(local_noon_ms("2025-04-01"));
  Hub hub(config, *store, ref, logger, clock, metrics);
  ASSERT_TRUE(hub.start().empty());

  clock.set(local_noon_ms("2025-04-30"));  // the hub has been running for a month
  std::atomic<bool> stop{false};
  const RunSummary s = hub.run_once(stop);
  EXPECT_TRUE(s.ok()) << s.line();
  EXPECT_EQ(s.inserted, 24u) << s.line();    // 28 minus the 4 malformed ones
  EXPECT_EQ(s.quarantined, 4u) << s.line();  // minutes out of range, not future dates
  const auto future = store->quarantine("counting", "future_date", 10, 0);
  EXPECT_TRUE(future.empty());
  store.reset();
  fs::remove_all(dir);
}
