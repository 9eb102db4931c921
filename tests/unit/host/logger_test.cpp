// The hub's log levels (issue 18, section 6).
#include <kpihub/logger.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

using namespace kpihub;

namespace {
std::string logged_at(LogLevel min_level) {
  std::FILE* f = std::tmpfile();
  {
    JsonLineLogger logger(f, min_level);
    logger.trace("eoffice", "GET http://127.0.0.1:18081/api/diary: HTTP 200");
    logger.debug("eoffice", "retrying");
    logger.info("hub", "running");
  }
  std::rewind(f);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  std::fclose(f);
  return out;
}
}  // namespace

// Regression: `log_level: "trace"` passed the configuration check, but the logger did not know
// the level and the hub silently ran at info.
TEST(Logger, EveryLevelTheConfigurationAcceptsIsALevelOfTheLogger) {
  for (const char* name : {"trace", "debug", "info", "warn", "error"}) {
    LogLevel level = LogLevel::error;
    ASSERT_TRUE(parse_log_level(name, level)) << name;
    EXPECT_EQ(to_string(level), name);
  }
  LogLevel level = LogLevel::info;
  EXPECT_FALSE(parse_log_level("verbose", level));
}

TEST(Logger, TraceShowsTraceLinesAndEverythingDebugShows) {
  const std::string trace = logged_at(LogLevel::trace);
  EXPECT_NE(trace.find("\"level\":\"trace\",\"source\":\"eoffice\",\"message\":\"GET "),
            std::string::npos)
      << trace;
  EXPECT_NE(trace.find("\"level\":\"debug\""), std::string::npos) << trace;
  EXPECT_NE(trace.find("\"level\":\"info\""), std::string::npos) << trace;
  const std::string debug = logged_at(LogLevel::debug);
  EXPECT_EQ(debug.find("\"level\":\"trace\""), std::string::npos) << debug;
  EXPECT_NE(debug.find("\"level\":\"debug\""), std::string::npos) << debug;
}
