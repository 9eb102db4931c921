// The services the host hands to each plugin instance (the C table
// kpihub_host_api of <kpihub/abi.h>): logger, clock, secrets, metrics, HTTP(S)
// client with verification on, stop flag.
#pragma once

#include <kpihub/abi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace kpihub {

enum class LogLevel;
class Logger;
class Metrics;

// A clock the tests can fake.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_unix_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t now_unix_ms() const override;
};

// Reads "file:/path" or "env:NAME" references. Relative file paths resolve
// against `base_dir`. Errors name the reference, never the value.
class SecretResolver {
 public:
  explicit SecretResolver(std::string base_dir = ".") : base_dir_(std::move(base_dir)) {}
  virtual ~SecretResolver() = default;
  // Throws std::runtime_error naming the reference when it cannot be read.
  virtual std::string resolve(std::string_view reference) const;

 private:
  std::string base_dir_;
};

// A request to stop, which plugin instances may share (one hub's): once made, their
// stop_requested() is true and every sleep_ms() of theirs returns early. Thread-safe; not
// async-signal-safe (a signal handler sets a flag that a thread turns into request()).
class StopSignal {
 public:
  void request();
  bool requested() const { return stop_.load(); }
  // Waits up to `ms`, returning early once a stop is requested.
  void wait_for(std::chrono::milliseconds ms);

 private:
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
};

// The host's log level of a plugin's ABI log level.
LogLevel log_level_of(kpihub_log_level level);
// Writes `message` into a caller's error buffer (cut to fit, NUL-terminated).
void write_error(kpihub_error_buf err, std::string_view message);

// One per plugin instance: the C table points back at this object.
class HostServices {
 public:
  // `stop`, when given, is the stop signal the instance shares (it must outlive it); without
  // one the instance has its own.
  HostServices(std::string plugin_instance, Logger& logger, const Clock& clock,
               const SecretResolver& secrets, Metrics* metrics, int32_t utc_offset_minutes = 420,
               StopSignal* stop = nullptr);
  ~HostServices();
  HostServices(const HostServices&) = delete;
  HostServices& operator=(const HostServices&) = delete;

  const kpihub_host_api* api() const { return &api_; }
  const std::string& instance() const { return instance_; }
  // Logs under the instance's name (what an isolated plugin's process logs arrives here).
  void log(LogLevel level, std::string_view message);

  // Makes stop_requested() true and wakes sleep_ms() callers (of every instance sharing the
  // signal).
  void request_stop() { stop_->request(); }
  bool stop_requested() const { return stop_->requested(); }

  // The label the host adds to the instance's metrics, with the instance's name
  // as its value: `source` or `sink` (PluginInstance sets it after the plugin's kind);
  // `plugin_instance` until then.
  void set_instance_label(std::string label) { instance_label_ = std::move(label); }

 private:
  friend struct HostServicesAccess;
  std::string instance_;
  Logger& logger_;
  const Clock& clock_;
  const SecretResolver& secrets_;
  Metrics* metrics_;
  int32_t utc_offset_minutes_;
  StopSignal own_stop_;
  StopSignal* stop_;
  kpihub_host_api api_{};
  std::string instance_label_ = "plugin_instance";
  std::mutex metric_warnings_mutex_;
  std::set<std::string, std::less<>> metric_warnings_;  // metrics a warning was logged for
  void warn_metric_once(std::string_view metric, const std::string& why);
};

}  // namespace kpihub
