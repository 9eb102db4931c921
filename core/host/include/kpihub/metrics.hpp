// Counters and gauges, rendered in the Prometheus text format.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kpihub {

class Metrics {
 public:
  // name: e.g. "kpihub_records_stored_total"; labels: e.g. source="eoffice"
  // (already formatted, without braces).
  void add(std::string_view name, std::string_view labels, double delta);
  void set(std::string_view name, std::string_view labels, double value);
  double get(std::string_view name, std::string_view labels) const;
  // A histogram observation in seconds (fixed buckets from 1 ms to 60 s),
  // e.g. observe("kpihub_stage_seconds", "stage=\"pull\",source=\"eoffice\"", 0.12).
  void observe(std::string_view name, std::string_view labels, double seconds);
  std::string prometheus_text() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, double> values_;
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative counts are computed when rendered
    double sum = 0;
    uint64_t count = 0;
  };
  std::map<std::pair<std::string, std::string>, Histogram> histograms_;
};

}  // namespace kpihub
