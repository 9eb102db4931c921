#include <kpihub/metrics.hpp>

#include <cstdio>

namespace kpihub {

namespace {
constexpr double kBuckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
constexpr std::size_t kBucketCount = sizeof kBuckets / sizeof kBuckets[0];

std::string number(double v) {
  char num[64];
  std::snprintf(num, sizeof num, "%.17g", v);
  return num;
}
}  // namespace

void Metrics::observe(std::string_view name, std::string_view labels, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& h = histograms_[{std::string(name), std::string(labels)}];
  if (h.buckets.empty()) h.buckets.assign(kBucketCount, 0);
  for (std::size_t i = 0; i < kBucketCount; ++i) {
    if (seconds <= kBuckets[i]) {
      ++h.buckets[i];
      break;
    }
  }
  h.sum += seconds;
  ++h.count;
}

void Metrics::add(std::string_view name, std::string_view labels, double delta) {
  std::lock_guard<std::mutex> lock(mutex_);
  values_[{std::string(name), std::string(labels)}] += delta;
}

void Metrics::set(std::string_view name, std::string_view labels, double value) {
  std::lock_guard<std::mutex> lock(mutex_);
  values_[{std::string(name), std::string(labels)}] = value;
}

double Metrics::get(std::string_view name, std::string_view labels) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = values_.find({std::string(name), std::string(labels)});
  return it == values_.end() ? 0.0 : it->second;
}

std::string Metrics::prometheus_text() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  std::string last_name;
  for (const auto& [key, value] : values_) {
    const auto& [name, labels] = key;
    if (name != last_name) {
      const bool counter = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
      out += "# TYPE " + name + (counter ? " counter\n" : " gauge\n");
      last_name = name;
    }
    char num[64];
    std::snprintf(num, sizeof num, "%.17g", value);
    out += name;
    if (!labels.empty()) out += "{" + labels + "}";
    out += " ";
    out += num;
    out += "\n";
  }
  last_name.clear();
  for (const auto& [key, h] : histograms_) {
    const auto& [name, labels] = key;
    if (name != last_name) {
      out += "# TYPE " + name + " histogram\n";
      last_name = name;
    }
    const std::string sep = labels.empty() ? "" : ",";
    uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBucketCount; ++i) {
      cumulative += h.buckets[i];
      out += name + "_bucket{" + labels + sep + "le=\"" + number(kBuckets[i]) + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(h.count) + "\n";
    const std::string braces = labels.empty() ? "" : "{" + labels + "}";
    out += name + "_sum" + braces + " " + number(h.sum) + "\n";
    out += name + "_count" + braces + " " + std::to_string(h.count) + "\n";
  }
  return out;
}

}  // namespace kpihub
