// `kpihub run` and `kpihub run --once` are one runner (Hub::run): these tests fail when the two
// modes drift apart again, in what they count or in how a stop ends them.
#include <kpihub/hub.hpp>
#include <kpihub_test/bundled_reference.hpp>
#include <kpihub_test/store.hpp>

#include <gtest/gtest.h>

#include <unistd.h>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

using namespace kpihub;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A clock the test moves while the hub's threads read it.
class MovingClock final : public Clock {
 public:
  explicit MovingClock(int64_t unix_ms) : unix_ms_(unix_ms) {}
  int64_t now_unix_ms() const override { return unix_ms_.load(); }
  void advance(int64_t ms) { unix_ms_.fetch_add(ms); }

 private:
  std::atomic<int64_t> unix_ms_;
};

int64_t local_noon_ms(const char* date) {
  return (static_cast<int64_t>(Date::parse(date)->days) * 86400 + 12 * 3600 - 7 * 3600) * 1000;
}

using test::bundled_reference;

const char* mode_name(RunMode mode) {
  return mode == RunMode::once ? "run --once" : "run";
}

// A hub in a fresh folder: the counting source (April 2025, KH-000123) and the file sink.
struct TestHub {
  TestHub(const std::string& name, const std::string& source_settings, HubOptions options = {})
      : dir(fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir / "plugins");
    fs::create_directories(dir / "var");
    for (const char* plugin : {TEST_SOURCE_PLUGIN, TEST_SINK_PLUGIN}) {
      fs::copy_file(plugin, dir / "plugins" / fs::path(plugin).filename());
    }
    config.hub_id = "runner-test";
    config.base_dir = dir.string();
    config.data_dir = (dir / "var").string();
    config.plugin_dir = (dir / "plugins").string();
    PluginInstanceConfig source;
    source.name = "counting";
    source.plugin = "counting-source";
    source.settings_json = source_settings;
    config.sources.push_back(source);
    PluginInstanceConfig sink;
    sink.name = "files";
    sink.plugin = "file-sink";
    sink.settings_json = R"({"file": ")" + (dir / "delivered.tsv").string() + R"("})";
    config.sinks.push_back(sink);
    config.store_path = (dir / "var" / test::store_file_name(config.store)).string();
    store = test::open_test_store(config.store, config.store_path);  // the default engine
    hub = std::make_unique<Hub>(config, *store, ref, logger, clock, metrics, options);
  }
  ~TestHub() {
    hub.reset();
    store.reset();
    fs::remove_all(dir);
  }

  fs::path dir;
  HubConfig config;
  ReferenceData ref = bundled_reference();
  JsonLineLogger logger{stderr, LogLevel::error};
  MovingClock clock{local_noon_ms("2025-04-30")};
  Metrics metrics;
  std::unique_ptr<Storage> store;
  std::unique_ptr<Hub> hub;
};

// The series of a /metrics page and their values; of a histogram, whether each series has
// samples (how many depends on timing, which series exist does not).
std::map<std::string, double> series(const std::string& prometheus_text) {
  std::map<std::string, double> out;
  std::istringstream in(prometheus_text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    const std::string name = line.substr(0, space);
    const double value = std::stod(line.substr(space + 1));
    if (name.find("_bucket{") != std::string::npos || name.find("_sum{") != std::string::npos) {
      continue;
    }
    out[name] = name.find("_count{") != std::string::npos ? (value > 0 ? 1 : 0) : value;
  }
  return out;
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

}  // namespace

// The same work counts the same in both modes: every counter and every stage histogram of
// /metrics, and the run's summary. They had drifted: `run --once` counted no failed pull, no
// scored staff month and no scoring or forwarding stage; `run` kept no summary.
TEST(HubRunner, RunAndRunOnceCountTheSameWork) {
  // 28 records in 4 pages (every 7th quarantined); the first pull fails (a retry).
  const std::string settings =
      R"({"records": 28, "page_size": 7, "fail_first_pulls": 1, "staff": ["KH-000123"]})";
  std::map<RunMode, std::map<std::string, double>> metrics;
  std::map<RunMode, RunSummary> summaries;
  for (const RunMode mode : {RunMode::once, RunMode::until_stopped}) {
    SCOPED_TRACE(mode_name(mode));
    TestHub t(mode == RunMode::once ? "kpihub-runner-once" : "kpihub-runner-run", settings);
    ASSERT_TRUE(t.hub->start().empty());
    std::atomic<bool> stop{false};
    RunSummary summary;
    std::thread runner([&] { summary = t.hub->run(stop, mode); });
    // `run` goes on until stopped: stop it once all is stored, scored and delivered.
    const bool done = eventually(
        [&] {
          const StoreCounts c = t.store->views().counts();
          return c.records == 24 && c.revisions_to_read == 0 && c.staff_months_to_score == 0 &&
                 c.outbox_pending == 0 &&
                 t.metrics.get("kpihub_forwarded_total", {{"sink", "files"}}) > 0;
        },
        30s);
    stop = true;
    runner.join();
    ASSERT_TRUE(done) << t.metrics.prometheus_text();
    EXPECT_TRUE(summary.ok()) << summary.line();
    metrics[mode] = series(t.metrics.prometheus_text());
    summaries[mode] = summary;
  }
  const auto& once = metrics[RunMode::once];
  const auto& run = metrics[RunMode::until_stopped];
  for (const auto& [name, value] : once) {
    const auto it = run.find(name);
    ASSERT_NE(it, run.end()) << name << " only in run --once";
    EXPECT_EQ(it->second, value) << name;
  }
  for (const auto& [name, value] : run) {
    EXPECT_TRUE(once.count(name)) << name << " = " << value << " only in run";
  }
  EXPECT_EQ(once.at("kpihub_pull_errors_total{source=\"counting\"}"), 1);
  EXPECT_EQ(once.at("kpihub_pages_total{source=\"counting\"}"), 4);
  EXPECT_EQ(once.at("kpihub_stage_seconds_count{stage=\"score\"}"), 1);
  EXPECT_EQ(once.at("kpihub_stage_seconds_count{sink=\"files\",stage=\"forward\"}"), 1);

  const RunSummary& a = summaries[RunMode::once];
  const RunSummary& b = summaries[RunMode::until_stopped];
  EXPECT_EQ(a.pages, 4u);
  EXPECT_EQ(a.inserted, 24u);
  EXPECT_EQ(a.quarantined, 4u);
  EXPECT_EQ(a.scored_staff_months, 1u);
  EXPECT_EQ(a.forwarded_batches, 1u);
  // The stages' counts, not their times.
  EXPECT_EQ(b.pages, a.pages);
  EXPECT_EQ(b.records, a.records);
  EXPECT_EQ(b.inserted, a.inserted);
  EXPECT_EQ(b.quarantined, a.quarantined);
  EXPECT_EQ(b.scored_staff_months, a.scored_staff_months);
  EXPECT_EQ(b.forwarded_batches, a.forwarded_batches);
  EXPECT_EQ(b.outbox_waiting, 0);
  EXPECT_GT(b.score.wall_s, 0);
  EXPECT_GT(b.forward.wall_s, 0);
}

// Memory the hub freed goes back to the system while it pulls and scores, in both modes, at
// most once a second: glibc kept a 7.7 M record backlog's freed pages (100 MB held for 46 MB in
// use while pulling).
TEST(HubRunner, FreedMemoryIsGivenBackAtMostOnceASecond) {
  for (const RunMode mode : {RunMode::once, RunMode::until_stopped}) {
    SCOPED_TRACE(mode_name(mode));
    std::atomic<int> calls{0};
    std::atomic<int> too_soon{0};
    std::mutex mutex;
    std::optional<std::chrono::steady_clock::time_point> last;
    HubOptions options;
    options.return_free_memory = [&] {
      const auto t = std::chrono::steady_clock::now();
      const std::lock_guard lock(mutex);
      if (last && t - *last < 1s) ++too_soon;
      last = t;
      ++calls;
    };
    // 24 records stored (every 7th of the 28 is quarantined), one staff month.
    TestHub t(mode == RunMode::once ? "kpihub-trim-once" : "kpihub-trim-run",
              R"({"records": 28, "page_size": 7, "staff": ["KH-000123"]})", options);
    ASSERT_TRUE(t.hub->start().empty());
    std::atomic<bool> stop{false};
    std::thread runner([&] { t.hub->run(stop, mode); });
    const bool scored = eventually(
        [&] {
          const StoreCounts c = t.store->views().counts();
          return c.records == 24 && c.staff_months_to_score == 0 && calls.load() > 0;
        },
        30s);
    stop = true;
    runner.join();
    EXPECT_TRUE(scored) << calls.load() << " calls";
    EXPECT_EQ(too_soon.load(), 0);
  }
}

// A stop ends both modes the same way: soon, after the page in hand, with no error and nothing
// counted as a failure (the plugin's wait it cut short included), the summary counting what was
// stored.
TEST(HubRunner, AStopEndsBothModesTheSameWay) {
  for (const RunMode mode : {RunMode::once, RunMode::until_stopped}) {
    SCOPED_TRACE(mode_name(mode));
    // A long pull: each page of 50 takes 200 ms (a wait the stop cuts short).
    TestHub t(mode == RunMode::once ? "kpihub-stop-once" : "kpihub-stop-run",
              R"({"records": 100000, "page_size": 50, "page_delay_ms": 200})");
    ASSERT_TRUE(t.hub->start().empty());
    std::atomic<bool> stop{false};
    RunSummary summary;
    std::atomic<bool> returned{false};
    std::thread runner([&] {
      summary = t.hub->run(stop, mode);
      returned = true;
    });
    const bool pulling = eventually(
        [&] {
          return t.metrics.get("kpihub_pages_total", {{"source", "counting"}}) >= 2;
        },
        20s);
    const auto stopped_at = std::chrono::steady_clock::now();
    stop = true;
    const bool ended = eventually([&] { return returned.load(); }, 5s);
    const auto took = std::chrono::steady_clock::now() - stopped_at;
    runner.join();
    ASSERT_TRUE(pulling);
    ASSERT_TRUE(ended);
    EXPECT_LT(took, 2s);
    EXPECT_TRUE(summary.ok()) << summary.line();
    const double pages = t.metrics.get("kpihub_pages_total", {{"source", "counting"}});
    EXPECT_EQ(static_cast<double>(summary.pages), pages);
    EXPECT_EQ(t.metrics.get("kpihub_pull_errors_total", {{"source", "counting"}}), 0);
    const auto cursor = std::stoll(t.store->records().cursor("counting").value_or("0"));
    EXPECT_EQ(cursor, static_cast<int64_t>(pages) * 50) << "a page was cut in half or lost";
    EXPECT_EQ(static_cast<int64_t>(summary.records), cursor);
    const auto status = t.hub->source_status();
    ASSERT_EQ(status.size(), 1u);
    EXPECT_EQ(status[0].state, "pulling");
    EXPECT_TRUE(status[0].last_error.empty()) << status[0].last_error;
  }
}

// A failing source is retried the same way in both modes, on the hub's clock (the test moves it
// past each wait): each failed pull is counted and shown in the source's status. `run` never
// gives up; `run --once` gives up after max_failures in a row and reports it.
TEST(HubRunner, AFailingSourceIsRetriedTheSameWayInBothModes) {
  HubOptions options;
  options.max_failures = 3;
  for (const RunMode mode : {RunMode::once, RunMode::until_stopped}) {
    SCOPED_TRACE(mode_name(mode));
    TestHub t(mode == RunMode::once ? "kpihub-fail-once" : "kpihub-fail-run",
              R"({"records": 28, "page_size": 7, "fail_first_pulls": 100})", options);
    ASSERT_TRUE(t.hub->start().empty());
    std::atomic<bool> stop{false};
    RunSummary summary;
    std::atomic<bool> returned{false};
    std::thread runner([&] {
      summary = t.hub->run(stop, mode);
      returned = true;
    });
    const auto errors = [&] {
      return t.metrics.get("kpihub_pull_errors_total", {{"source", "counting"}});
    };
    // The waits are 0.5-1 s, then 1-2 s: moving the clock 5 minutes ends each at once.
    bool retried = true;
    for (int failure = 1; failure <= 3 && retried; ++failure) {
      retried = eventually([&] { return errors() >= failure; }, 2s);
      t.clock.advance(5 * 60 * 1000);
    }
    EXPECT_TRUE(retried) << "pull errors: " << errors();
    const bool gave_up = eventually([&] { return returned.load(); }, 500ms);
    stop = true;
    runner.join();
    const auto status = t.hub->source_status();
    ASSERT_EQ(status.size(), 1u);
    EXPECT_EQ(status[0].state, "failing");
    EXPECT_NE(status[0].last_error.find("simulated outage"), std::string::npos)
        << status[0].last_error;
    EXPECT_EQ(summary.pages, 0u);
    if (mode == RunMode::once) {
      EXPECT_TRUE(gave_up) << "run --once still retrying after max_failures";
      EXPECT_EQ(errors(), 3);
      ASSERT_EQ(summary.errors.size(), 1u) << summary.line();
      EXPECT_NE(summary.errors[0].find("simulated outage"), std::string::npos) << summary.errors[0];
    } else {
      EXPECT_FALSE(gave_up) << "run gave up on a source";
      EXPECT_GE(errors(), 3);
      EXPECT_TRUE(summary.ok()) << summary.line();
    }
  }
}
