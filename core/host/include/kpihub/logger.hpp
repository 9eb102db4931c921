// Logs as JSON lines (time, level, source, record_id, message) that an
// operator can grep; secrets never pass through here by construction (they
// are never put into messages).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

namespace kpihub {

// trace: what debug says and every HTTP request a plugin makes through the host
// (method, URL without its query, status, size, time).
enum class LogLevel { trace = -1, debug = 0, info = 1, warn = 2, error = 3 };

std::string_view to_string(LogLevel level);
// Every level hub.json's `log_level` accepts: trace, debug, info, warn, error.
bool parse_log_level(std::string_view s, LogLevel& out);

class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(LogLevel level, std::string_view source, std::string_view message,
                   std::string_view record_id = {}) = 0;
  void info(std::string_view source, std::string_view message) {
    log(LogLevel::info, source, message);
  }
  void warn(std::string_view source, std::string_view message) {
    log(LogLevel::warn, source, message);
  }
  void error(std::string_view source, std::string_view message) {
    log(LogLevel::error, source, message);
  }
  void debug(std::string_view source, std::string_view message) {
    log(LogLevel::debug, source, message);
  }
  void trace(std::string_view source, std::string_view message) {
    log(LogLevel::trace, source, message);
  }
};

// Lets one line through per interval and counts the rest, so a flood (refused requests, a
// failing peer) cannot fill the disk with one message. Thread-safe.
class LogRateLimit {
 public:
  explicit LogRateLimit(int64_t interval_ms) : interval_ms_(interval_ms) {}
  // True when a line may be written at `now_ms`; `suppressed` gets how many were held back
  // since the last one written.
  bool allow(int64_t now_ms, uint64_t& suppressed) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (now_ms < next_ms_) {
      ++held_back_;
      return false;
    }
    suppressed = held_back_;
    held_back_ = 0;
    next_ms_ = now_ms + interval_ms_;
    return true;
  }

 private:
  std::mutex mutex_;
  int64_t interval_ms_;
  int64_t next_ms_ = 0;
  uint64_t held_back_ = 0;
};

// Writes JSON lines to a FILE* (stderr by default), thread-safe.
class JsonLineLogger final : public Logger {
 public:
  explicit JsonLineLogger(std::FILE* out = stderr, LogLevel min_level = LogLevel::info)
      : out_(out), min_level_(min_level) {}
  void log(LogLevel level, std::string_view source, std::string_view message,
           std::string_view record_id = {}) override;
  // Any thread may change it while others log (a reload sets hub.json's log_level).
  void set_min_level(LogLevel level) { min_level_.store(level); }

 private:
  std::FILE* out_;
  std::atomic<LogLevel> min_level_;
  std::mutex mutex_;
};

}  // namespace kpihub
