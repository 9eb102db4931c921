#include <kpihub/metrics.hpp>

#include <cstdio>

namespace kpihub {

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
  return out;
}

}  // namespace kpihub
