// Counters, gauges and histograms, rendered in the Prometheus text format
// (version 0.0.4): every family with its `# HELP` and `# TYPE`, labels given as
// name/value pairs and escaped here, so no caller (and no plugin) can write an
// exposition that Prometheus refuses.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kpihub {

enum class MetricType { counter, gauge, histogram };

std::string_view to_string(MetricType type);

struct MetricLabel {
  std::string name;
  std::string value;
};
// In any order: a series is identified by its labels sorted by name.
using MetricLabels = std::vector<MetricLabel>;

// The help text of a family nobody declared (a plugin built for ABI 1.0).
inline constexpr std::string_view kUndeclaredMetricHelp = "no help text declared";

// Who made a family: a plugin cannot write the hub's families, and the hub takes over a family
// a plugin made first under one of its names (a plugin declaring `kpihub_records_pulled_total` as
// a gauge stopped the hub at start: review of issue 18).
enum class MetricOwner { hub, plugin };

class Metrics {
 public:
  // Declares a family: its type and one line of help. Declaring it again with
  // the same type keeps the first help text. Throws std::invalid_argument when
  // the name is not a Prometheus metric name, the family has another type, or a plugin
  // declares a family of the hub's. The hub declaring a family a plugin made replaces it.
  void declare(std::string_view name, MetricType type, std::string_view help,
               MetricOwner owner = MetricOwner::hub);

  // `add` and `set` on a family nobody declared declare it: a counter when the
  // name ends in `_total`, else a gauge, with kUndeclaredMetricHelp.
  // They throw std::invalid_argument, naming the metric, when a label name is
  // not a Prometheus label name, is reserved (`instance` and `job`, which
  // Prometheus sets; `le`, `quantile`; names starting with `__`) or repeats,
  // when a label value is not UTF-8, when the value is not finite, when a counter
  // would go down, and when the family is of another type.
  // Adding 0 creates the series, so a counter exists at 0 before anything is counted.
  // A plugin's `add` to a family of the hub's throws too.
  void add(std::string_view name, const MetricLabels& labels, double delta,
           MetricOwner owner = MetricOwner::hub);
  void set(std::string_view name, const MetricLabels& labels, double value);
  // 0 when the series does not exist.
  double get(std::string_view name, const MetricLabels& labels) const;
  // A histogram observation in seconds (fixed buckets from 1 ms to 60 s), e.g.
  // observe("kpihub_stage_seconds", {{"stage", "pull"}, {"source", "eoffice"}}, 0.12).
  void observe(std::string_view name, const MetricLabels& labels, double seconds);

  std::string prometheus_text() const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative counts are computed when rendered
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    MetricOwner owner = MetricOwner::hub;
    MetricType type = MetricType::gauge;
    std::string help;
    // Keyed by the rendered label set (`a="x",b="y"`, sorted by name).
    std::map<std::string, double> values;
    std::map<std::string, Histogram> histograms;
  };
  Family& family(std::string_view name, MetricType implied, MetricOwner owner = MetricOwner::hub);

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;
};

// True for a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
bool valid_metric_name(std::string_view name);

}  // namespace kpihub
