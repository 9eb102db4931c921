#include <kpihub/metrics.hpp>
#include <kpihub/text.hpp>
#include <kpihub/validate.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace kpihub {

namespace {
constexpr double kBuckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
constexpr std::size_t kBucketCount = sizeof kBuckets / sizeof kBuckets[0];

// The shortest text that reads back as the same double (0.1, not 0.10000000000000001).
std::string number(double v) {
  char num[64];
  const auto end = std::to_chars(num, num + sizeof num, v).ptr;
  return std::string(num, end);
}

bool name_char(char c, bool first, bool colon) {
  const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  const bool digit = c >= '0' && c <= '9';
  return letter || (colon && c == ':') || (!first && digit);
}

bool valid_name(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, colon)) return false;
  }
  return true;
}

// The exposition format's escapes: a label value escapes \ " and newline, a help text \ and
// newline.
std::string escaped(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string quoted(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

// The series key: the labels sorted by name, rendered and escaped.
std::string label_key(std::string_view metric, const MetricLabels& labels) {
  std::vector<const MetricLabel*> sorted;
  sorted.reserve(labels.size());
  for (const auto& l : labels) sorted.push_back(&l);
  std::sort(sorted.begin(), sorted.end(),
            [](const MetricLabel* a, const MetricLabel* b) { return a->name < b->name; });
  std::string key;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const MetricLabel& l = *sorted[i];
    const auto refuse = [&](std::string_view why) {
      return std::invalid_argument("metric " + std::string(metric) + ": label " + quoted(l.name) +
                                   std::string(why));
    };
    if (!valid_name(l.name, false)) {
      throw refuse(" is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)");
    }
    if (l.name.rfind("__", 0) == 0 || l.name == "le" || l.name == "quantile" ||
        l.name == "instance" || l.name == "job") {
      throw refuse(
          " is reserved (Prometheus sets instance and job itself; le, quantile and names "
          "starting with __ have their own meaning)");
    }
    if (i > 0 && sorted[i - 1]->name == l.name) throw refuse(" is given twice");
    if (!sdk::valid_utf8(l.value)) throw refuse(": the value is not UTF-8");
    if (!key.empty()) key += ',';
    key += l.name;
    key += "=\"";
    key += escaped(l.value, true);
    key += '"';
  }
  return key;
}

void check_finite(std::string_view metric, double v) {
  if (!std::isfinite(v)) {
    throw std::invalid_argument("metric " + std::string(metric) + ": " + number(v) +
                                " is not a finite number");
  }
}

std::string braces(const std::string& key) {
  return key.empty() ? std::string() : "{" + key + "}";
}
}  // namespace

std::string_view to_string(MetricType type) {
  switch (type) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
}

bool valid_metric_name(std::string_view name) {
  return valid_name(name, true);
}

void Metrics::declare(std::string_view name, MetricType type, std::string_view help,
                      MetricOwner owner) {
  if (!valid_metric_name(name)) {
    throw std::invalid_argument("metric " + quoted(name) +
                                ": not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = families_.find(name);
  if (it != families_.end() && it->second.owner != owner) {
    if (owner == MetricOwner::plugin) {
      throw std::invalid_argument("metric " + std::string(name) +
                                  " is the hub's own; a plugin cannot declare it");
    }
    families_.erase(it);  // the hub's name: what a plugin wrote under it goes
    it = families_.end();
  }
  if (it == families_.end()) {
    Family f;
    f.owner = owner;
    f.type = type;
    f.help = help.empty() ? std::string(kUndeclaredMetricHelp) : std::string(help);
    families_.emplace(std::string(name), std::move(f));
    return;
  }
  if (it->second.type != type) {
    throw std::invalid_argument("metric " + std::string(name) + " is a " +
                                std::string(to_string(it->second.type)) + ", not a " +
                                std::string(to_string(type)));
  }
  if (it->second.help == kUndeclaredMetricHelp && !help.empty()) it->second.help = help;
}

Metrics::Family& Metrics::family(std::string_view name, MetricType implied, MetricOwner owner) {
  auto it = families_.find(name);
  if (it != families_.end()) {
    if (owner == MetricOwner::plugin && it->second.owner == MetricOwner::hub) {
      throw std::invalid_argument("metric " + std::string(name) +
                                  " is the hub's own; a plugin cannot write it");
    }
    return it->second;
  }
  if (!valid_metric_name(name)) {
    throw std::invalid_argument("metric " + quoted(name) +
                                ": not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  Family f;
  f.owner = owner;
  f.type = implied;
  f.help = kUndeclaredMetricHelp;
  return families_.emplace(std::string(name), std::move(f)).first->second;
}

namespace {
MetricType implied_type(std::string_view name) {
  return name.size() > 6 && name.substr(name.size() - 6) == "_total" ? MetricType::counter
                                                                     : MetricType::gauge;
}
}  // namespace

void Metrics::add(std::string_view name, const MetricLabels& labels, double delta,
                  MetricOwner owner) {
  check_finite(name, delta);
  const std::string key = label_key(name, labels);
  std::lock_guard<std::mutex> lock(mutex_);
  Family& f = family(name, implied_type(name), owner);
  if (f.type == MetricType::histogram) {
    throw std::invalid_argument("metric " + std::string(name) + " is a histogram: observe it");
  }
  if (f.type == MetricType::counter && delta < 0) {
    throw std::invalid_argument("metric " + std::string(name) +
                                " is a counter and cannot go down (" + number(delta) + ")");
  }
  f.values[key] += delta;
}

void Metrics::set(std::string_view name, const MetricLabels& labels, double value) {
  check_finite(name, value);
  const std::string key = label_key(name, labels);
  std::lock_guard<std::mutex> lock(mutex_);
  Family& f = family(name, MetricType::gauge);
  if (f.type != MetricType::gauge) {
    throw std::invalid_argument("metric " + std::string(name) + " is a " +
                                std::string(to_string(f.type)) + ", not a gauge: it cannot be set");
  }
  f.values[key] = value;
}

double Metrics::get(std::string_view name, const MetricLabels& labels) const {
  const std::string key = label_key(name, labels);
  std::lock_guard<std::mutex> lock(mutex_);
  const auto f = families_.find(name);
  if (f == families_.end()) return 0.0;
  const auto it = f->second.values.find(key);
  return it == f->second.values.end() ? 0.0 : it->second;
}

void Metrics::observe(std::string_view name, const MetricLabels& labels, double seconds) {
  check_finite(name, seconds);
  const std::string key = label_key(name, labels);
  std::lock_guard<std::mutex> lock(mutex_);
  Family& f = family(name, MetricType::histogram);
  if (f.type != MetricType::histogram) {
    throw std::invalid_argument("metric " + std::string(name) + " is a " +
                                std::string(to_string(f.type)) + ", not a histogram");
  }
  auto& h = f.histograms[key];
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

std::string Metrics::prometheus_text() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + escaped(f.help, false) + "\n";
    out += "# TYPE " + name + " " + std::string(to_string(f.type)) + "\n";
    for (const auto& [key, value] : f.values) {
      out += name + braces(key) + " " + number(value) + "\n";
    }
    for (const auto& [key, h] : f.histograms) {
      const std::string sep = key.empty() ? "" : ",";
      uint64_t cumulative = 0;
      for (std::size_t i = 0; i < kBucketCount; ++i) {
        cumulative += h.buckets[i];
        out += name + "_bucket{" + key + sep + "le=\"" + number(kBuckets[i]) + "\"} " +
               std::to_string(cumulative) + "\n";
      }
      out += name + "_bucket{" + key + sep + "le=\"+Inf\"} " + std::to_string(h.count) + "\n";
      out += name + "_sum" + braces(key) + " " + number(h.sum) + "\n";
      out += name + "_count" + braces(key) + " " + std::to_string(h.count) + "\n";
    }
  }
  return out;
}

}  // namespace kpihub
