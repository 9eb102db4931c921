// /metrics as Prometheus reads it: what the host renders from its own metrics
// and from a plugin's calls through the host API (issue 18, section 5).
#include <kpihub/host_services.hpp>
#include <kpihub/logger.hpp>
#include <kpihub/metrics.hpp>
#include <kpihub_test/manual_clock.hpp>
#include <kpihub_test/process.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

using namespace kpihub;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

namespace {

class CapturingLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view source, std::string_view message,
           std::string_view) override {
    std::lock_guard lock(mutex_);
    lines.push_back(std::string(to_string(level)) + " " + std::string(source) + ": " +
                    std::string(message));
  }
  std::vector<std::string> lines;

 private:
  std::mutex mutex_;
};

kpihub_str str(std::string_view s) {
  return {s.data(), s.size()};
}

// A plugin instance's view of the host: the C table, as a plugin calls it.
class PluginHost {
 public:
  PluginHost(const std::string& instance, const std::string& kind)
      : services_(instance, logger, clock_, secrets_, &metrics) {
    services_.set_instance_label(kind);
  }
  const kpihub_host_api& api() const { return *services_.api(); }
  kpihub_status declare(std::string_view name, kpihub_metric_type type, std::string_view help,
                        std::string* error = nullptr) {
    char buf[512] = {0};
    const kpihub_status st =
        api().metric_declare(api().ctx, str(name), type, str(help), {buf, sizeof buf});
    if (error) *error = buf;
    return st;
  }
  void add(std::string_view name, std::vector<std::pair<std::string, std::string>> labels,
           double delta) {
    std::vector<kpihub_label> raw;
    for (const auto& [n, v] : labels) raw.push_back({str(n), str(v)});
    api().metric_add_labeled(api().ctx, str(name), raw.data(), raw.size(), delta);
  }
  void add_abi_1_0(std::string_view name, std::string_view label, double delta) {
    api().metric_add(api().ctx, str(name), str(label), delta);
  }

  Metrics metrics;
  CapturingLogger logger;

 private:
  test::ManualClock clock_{1744189200000};
  SecretResolver secrets_;
  HostServices services_;
};

// promtool's verdict on an exposition, or nullopt when promtool is not installed.
std::optional<std::pair<int, std::string>> promtool_check(const std::string& exposition) {
  if (!fs::exists("/usr/bin/promtool")) return std::nullopt;
  const fs::path dir = fs::temp_directory_path() / ("kpihub-metrics-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "metrics.txt") << exposition;
  const int code = test::run(
      {"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + (dir / "metrics.txt").string()},
      dir / "promtool.txt");
  const std::string out = test::slurp(dir / "promtool.txt");
  fs::remove_all(dir);
  return std::make_pair(code, out);
}

}  // namespace

// Regression: the host pasted a plugin's bare label value in as if it were `key="value"`
// (`eoffice_items_total{instance="eoffice",record} 211`), and Prometheus refused the page.
TEST(PluginMetrics, LabelsCrossAsNamePairsAndTheHostEscapesTheValues) {
  PluginHost host("eoffice", "source");
  ASSERT_EQ(host.declare("eoffice_items_total", KPIHUB_METRIC_COUNTER,
                         "Diary items read, by outcome\nand a back\\slash"),
            KPIHUB_OK);
  host.add("eoffice_items_total", {{"outcome", "record"}}, 211);
  host.add("eoffice_items_total", {{"outcome", "quote \" back\\slash\nnewline"}}, 1);
  const std::string text = host.metrics.prometheus_text();
  EXPECT_THAT(text, HasSubstr("# HELP eoffice_items_total Diary items read, by outcome\\nand a "
                              "back\\\\slash\n# TYPE eoffice_items_total counter\n"));
  EXPECT_THAT(text, HasSubstr("eoffice_items_total{outcome=\"record\",source=\"eoffice\"} 211\n"));
  EXPECT_THAT(text, HasSubstr("eoffice_items_total{outcome=\"quote \\\" back\\\\slash\\nnewline\","
                              "source=\"eoffice\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("instance=")));
  const auto verdict = promtool_check(text);
  if (verdict) {
    EXPECT_EQ(verdict->first, 0) << verdict->second << text;
  }
}

// A plugin built for ABI 1.0 keeps working: its bare label becomes a label named `label`.
TEST(PluginMetrics, AnAbi10PluginsBareLabelBecomesALabelNamedLabel) {
  PluginHost host("province", "sink");
  host.add_abi_1_0("eoffice_items_total", "record", 211);
  host.add_abi_1_0("kpihub_provincial_items_total", "outcome=\"delivered\"", 3);
  host.add_abi_1_0("kpihub_provincial_token_fetches_total", "", 1);
  const std::string text = host.metrics.prometheus_text();
  EXPECT_THAT(text, HasSubstr("eoffice_items_total{label=\"record\",sink=\"province\"} 211\n"));
  EXPECT_THAT(text, HasSubstr("kpihub_provincial_items_total{label=\"outcome=\\\"delivered\\\"\","
                              "sink=\"province\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("# HELP kpihub_provincial_token_fetches_total no help text "
                              "declared\n# TYPE kpihub_provincial_token_fetches_total counter\n"
                              "kpihub_provincial_token_fetches_total{sink=\"province\"} 1\n"));
  const auto verdict = promtool_check(text);
  if (verdict) {
    EXPECT_EQ(verdict->first, 0) << verdict->second << text;
  }
}

// A counter declared and added 0 exists from the start: an alert on "nothing delivered" has a
// series to watch before the first delivery.
TEST(PluginMetrics, ADeclaredCounterExistsAtZero) {
  PluginHost host("province", "sink");
  ASSERT_EQ(host.declare("kpihub_provincial_items_total", KPIHUB_METRIC_COUNTER,
                         "Batch items answered by the receiver, by outcome"),
            KPIHUB_OK);
  host.add("kpihub_provincial_items_total", {{"outcome", "delivered"}}, 0);
  EXPECT_THAT(
      host.metrics.prometheus_text(),
      HasSubstr("kpihub_provincial_items_total{outcome=\"delivered\",sink=\"province\"} 0\n"));
}

// What Prometheus cannot take never reaches the page: the sample is dropped and the log says
// which plugin, which metric and why, once.
TEST(PluginMetrics, SamplesPrometheusCannotTakeAreDroppedWithOneWarning) {
  PluginHost host("eoffice", "source");
  ASSERT_EQ(host.declare("eoffice_items_total", KPIHUB_METRIC_COUNTER, "Items"), KPIHUB_OK);
  host.add("eoffice_items_total", {{"instance", "x"}}, 1);
  host.add("eoffice_items_total", {{"instance", "x"}}, 1);
  host.add("eoffice_items_total", {{"source", "other"}}, 1);
  host.add("eoffice_bad_total", {{"1st", "x"}}, 1);
  host.add("eoffice_twice_total", {{"a", "x"}, {"a", "y"}}, 1);
  host.add("eoffice_utf8_total", {{"a", "\xff"}}, 1);
  host.add("eoffice_items_total", {{"outcome", "record"}}, -1);
  host.add("eoffice_items_total", {{"outcome", "record"}}, std::numeric_limits<double>::infinity());
  host.add("bad name", {}, 1);
  const std::string text = host.metrics.prometheus_text();
  EXPECT_THAT(text, Not(HasSubstr("eoffice_items_total{")));
  EXPECT_THAT(text, Not(HasSubstr("eoffice_bad_total{")));
  EXPECT_THAT(text, Not(HasSubstr("eoffice_twice_total{")));
  EXPECT_THAT(text, Not(HasSubstr("eoffice_utf8_total{")));
  EXPECT_THAT(text, Not(HasSubstr("bad name")));
  const auto& lines = host.logger.lines;
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines[0], HasSubstr("warn eoffice: metric eoffice_items_total: label \"instance\" is "
                                  "reserved"));
  std::size_t about_items = 0;
  for (const auto& l : lines) about_items += l.find("eoffice_items_total") != std::string::npos;
  EXPECT_EQ(about_items, 1u) << "one warning per metric";
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  EXPECT_THAT(all, HasSubstr("label \"1st\" is not a Prometheus label name"));
  EXPECT_THAT(all, HasSubstr("label \"a\" is given twice"));
  EXPECT_THAT(all, HasSubstr("label \"a\": the value is not UTF-8"));
  EXPECT_THAT(all, HasSubstr("metric \"bad name\": not a Prometheus metric name"));
}

TEST(PluginMetrics, DeclaringAFamilyAgainWithAnotherTypeIsAConfigurationError) {
  PluginHost host("eoffice", "source");
  ASSERT_EQ(host.declare("eoffice_items_total", KPIHUB_METRIC_COUNTER, "Items"), KPIHUB_OK);
  EXPECT_EQ(host.declare("eoffice_items_total", KPIHUB_METRIC_COUNTER, "Items"), KPIHUB_OK);
  std::string error;
  EXPECT_EQ(host.declare("eoffice_items_total", KPIHUB_METRIC_GAUGE, "Items", &error),
            KPIHUB_ERR_CONFIG);
  EXPECT_EQ(error, "metric eoffice_items_total is a counter, not a gauge");
  EXPECT_EQ(host.declare("eoffice-items", KPIHUB_METRIC_GAUGE, "Items", &error), KPIHUB_ERR_CONFIG);
  EXPECT_THAT(error, HasSubstr("not a Prometheus metric name"));
}

// Review of issue 18: a plugin that declared one of the hub's family names with another type
// stopped the hub at start (the hub declares some families after creating the plugins). The hub
// takes the name over, and a plugin cannot write the hub's families.
TEST(PluginMetrics, APluginCannotTakeAFamilyOfTheHubs) {
  PluginHost host("eoffice", "source");
  ASSERT_EQ(host.declare("kpihub_records_pulled_total", KPIHUB_METRIC_GAUGE, "mine"), KPIHUB_OK);
  host.add("kpihub_records_pulled_total", {}, 7);
  // The hub declares it afterwards, as a counter: no exception, and it is the hub's.
  EXPECT_NO_THROW(host.metrics.declare("kpihub_records_pulled_total", MetricType::counter,
                                       "Records pulled, by source"));
  host.metrics.add("kpihub_records_pulled_total", {{"source", "eoffice"}}, 3);
  host.add("kpihub_records_pulled_total", {}, 1000);  // dropped, with a warning
  std::string error;
  EXPECT_EQ(host.declare("kpihub_records_pulled_total", KPIHUB_METRIC_COUNTER, "x", &error),
            KPIHUB_ERR_CONFIG);
  EXPECT_THAT(error, HasSubstr("is the hub's own"));
  const std::string text = host.metrics.prometheus_text();
  EXPECT_THAT(text, HasSubstr("# TYPE kpihub_records_pulled_total counter\n"
                              "kpihub_records_pulled_total{source=\"eoffice\"} 3\n"));
  EXPECT_THAT(text, Not(HasSubstr("1000")));
  EXPECT_THAT(text, Not(HasSubstr(" 7\n")));
  bool warned = false;
  for (const auto& line : host.logger.lines) {
    warned = warned || line.find("is the hub's own") != std::string::npos;
  }
  EXPECT_TRUE(warned);
}

// The host's own families: every one with # HELP and # TYPE, histograms included.
TEST(HostMetrics, EveryFamilyHasHelpAndTypeAndPromtoolAcceptsThePage) {
  Metrics m;
  m.declare("kpihub_pages_total", MetricType::counter, "Pages pulled and stored, by source");
  m.declare("kpihub_stage_seconds", MetricType::histogram, "Seconds per step");
  m.declare("kpihub_outbox_depth", MetricType::gauge, "Outbox items not delivered yet");
  m.add("kpihub_pages_total", {{"source", "eoffice"}}, 3);
  m.observe("kpihub_stage_seconds", {{"stage", "pull"}, {"source", "eoffice"}}, 0.2);
  m.observe("kpihub_stage_seconds", {{"stage", "score"}}, 2);
  m.set("kpihub_outbox_depth", {{"sink", "provincial"}}, 12);
  m.set("kpihub_outbox_depth", {{"sink", "provincial"}}, 10);
  EXPECT_THROW(m.set("kpihub_pages_total", {}, 1), std::invalid_argument);
  EXPECT_THROW(m.add("kpihub_stage_seconds", {}, 1), std::invalid_argument);
  const std::string text = m.prometheus_text();
  EXPECT_THAT(text, HasSubstr("# HELP kpihub_outbox_depth Outbox items not delivered yet\n"
                              "# TYPE kpihub_outbox_depth gauge\n"
                              "kpihub_outbox_depth{sink=\"provincial\"} 10\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE kpihub_stage_seconds histogram\n"));
  EXPECT_THAT(text, HasSubstr("kpihub_stage_seconds_bucket{source=\"eoffice\",stage=\"pull\","
                              "le=\"+Inf\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("kpihub_stage_seconds_count{stage=\"score\"} 1\n"));
  EXPECT_EQ(m.get("kpihub_pages_total", {{"source", "eoffice"}}), 3);
  const auto verdict = promtool_check(text);
  if (verdict) {
    EXPECT_EQ(verdict->first, 0) << verdict->second << text;
  }
}

namespace {

// A plugin in a process of its own may name any reference, and the hub's thread reads it: what
// is not a small regular file is refused at once (review of issue 19 section 2: /dev/zero grew
// the hub's memory without end, a FIFO blocked it for ever).
TEST(Secrets, OnlyASmallRegularFileIsReadAndNothingBlocks) {
  const fs::path dir = fs::temp_directory_path() / ("kpihub-secrets-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "token") << "s3cret\n";
  std::ofstream(dir / "large") << std::string(70 * 1024, 'x');
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  const kpihub::SecretResolver secrets(dir.string());
  EXPECT_EQ(secrets.resolve("file:token"), "s3cret");
  const auto refusal = [&](const std::string& reference) {
    try {
      secrets.resolve(reference);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("read");
  };
  EXPECT_EQ(refusal("file:/dev/zero"), "secret file:/dev/zero: /dev/zero is not a regular file");
  EXPECT_EQ(refusal("file:fifo"),
            "secret file:fifo: " + (dir / "fifo").string() + " is not a regular file");
  EXPECT_EQ(refusal("file:large"), "secret file:large: file " + (dir / "large").string() +
                                       " is 71680 bytes, more than a secret's 65536");
  fs::remove_all(dir);
}

}  // namespace
