// The education source: teaching-log files from an inbox folder, optionally
// fetched over HTTP from the school system first (they then go through the
// same inbox, so a download is never read half-written or twice).
#pragma once

#include <kpihub/education/teaching_log.hpp>
#include <kpihub/inbox.hpp>

#include <memory>
#include <optional>
#include <string>

namespace kpihub::education {

struct HttpPullSettings {
  std::string base_url;
  std::string path = "/export/teaching-log";
  std::string api_key_ref;  // "file:<path>" or "env:<name>"
  std::optional<std::string> ca_file;
  std::string from_date;  // first day to fetch, YYYY-MM-DD
  int window_days = 7;
  // Each request starts this many days before its window (not before
  // from_date), so that corrections to recent days arrive.
  int lookback_days = 7;
  // The window that contains today is fetched again at most this often.
  int refresh_minutes = 60;
  unsigned connect_timeout_ms = 5000;
  unsigned request_timeout_ms = 60000;
};

class EducationSource final : public sdk::Source {
 public:
  EducationSource(sdk::Host& host, sdk::Settings& settings);
  void pull(std::optional<std::string_view> cursor, sdk::Page& page) override;

  // The next window after `state` (empty: from_date), fetched into the inbox;
  // returns the new state: "YYYY-MM-DD" (the next window's first day) or,
  // once the window reaches today, "YYYY-MM-DD@<unix ms of that fetch>" (the
  // same window, fetched again after refresh_minutes). Public for tests.
  std::string fetch_next(const std::string& state);

 private:
  sdk::Host& host_;
  std::string xsd_;
  std::unique_ptr<sdk::Inbox> inbox_;
  std::optional<HttpPullSettings> http_;
  std::unique_ptr<sdk::HttpClient> client_;
};

}  // namespace kpihub::education
