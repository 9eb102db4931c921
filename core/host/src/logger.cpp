#include <kpihub/logger.hpp>

#include <boost/json.hpp>

#include <chrono>
#include <ctime>

namespace kpihub {

std::string_view to_string(LogLevel level) {
  switch (level) {
    case LogLevel::trace:
      return "trace";
    case LogLevel::debug:
      return "debug";
    case LogLevel::info:
      return "info";
    case LogLevel::warn:
      return "warn";
    case LogLevel::error:
      return "error";
  }
  return "info";
}

bool parse_log_level(std::string_view s, LogLevel& out) {
  for (LogLevel l :
       {LogLevel::trace, LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
    if (to_string(l) == s) {
      out = l;
      return true;
    }
  }
  return false;
}

void JsonLineLogger::log(LogLevel level, std::string_view source, std::string_view message,
                         std::string_view record_id) {
  if (level < min_level_.load()) return;
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  boost::json::object line;
  line.emplace("time", stamp);
  line.emplace("level", to_string(level));
  if (!source.empty()) line.emplace("source", source);
  if (!record_id.empty()) line.emplace("record_id", record_id);
  line.emplace("message", message);
  std::string text = boost::json::serialize(line);
  text += '\n';
  std::lock_guard<std::mutex> lock(mutex_);
  std::fwrite(text.data(), 1, text.size(), out_);
  std::fflush(out_);
}

}  // namespace kpihub
