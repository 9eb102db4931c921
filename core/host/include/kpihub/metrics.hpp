// Counters and gauges, rendered in the Prometheus text format.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace kpihub {

class Metrics {
 public:
  // name: e.g. "kpihub_records_stored_total"; labels: e.g. source="eoffice"
  // (already formatted, without braces).
  void add(std::string_view name, std::string_view labels, double delta);
  void set(std::string_view name, std::string_view labels, double value);
  double get(std::string_view name, std::string_view labels) const;
  std::string prometheus_text() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, double> values_;
};

}  // namespace kpihub
