// The E-Office source: OAuth2 client credentials, the work-diary feed with an
// (updated_at, id) cursor, and the staff list (spec/sources.md, section 1).
#pragma once

#include <kpihub/eoffice/normalizer.hpp>
#include <kpihub/http_helpers.hpp>
#include <kpihub/sdk.hpp>

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace kpihub::eoffice {

struct SourceSettings {
  std::string base_url;
  std::string client_id;
  std::string client_secret_ref;  // "file:..." or "env:..."
  std::optional<std::string> ca_file;
  bool insecure_skip_verify = false;
  int64_t page_size = 500;
  std::string updated_since = "1970-01-01T00:00:00+07:00";
  std::string token_path = "/oauth2/token";
  std::string diary_path = "/api/v1/work-diary";
  std::string staff_path = "/api/v1/staff";
  FieldMap fields = FieldMap::defaults();
  int64_t max_attempts = 5;
  // Pages in a row that bring nothing new before a walk is stopped as making no progress.
  int64_t max_stalled_pages = 1000;
  // Time one pull (or staff list) may take, retries included, before it gives up for now.
  int64_t pull_budget_ms = 600000;
  int64_t backoff_initial_ms = 200;
  int64_t backoff_max_ms = 30000;
  int64_t retry_after_max_ms = 300000;
  int64_t connect_timeout_ms = 5000;
  int64_t request_timeout_ms = 30000;

  // Reads every key through `settings`; throws sdk::ConfigError naming the key.
  static SourceSettings read(sdk::Settings& settings);
};

// Stops a walk of pages that makes no progress (issue 19: a source that answered the same
// page token again, or new tokens with the same items, made `run --once` run for ever at
// thousands of requests a second): a page token seen before in the same walk, or
// `max_stalled_pages` pages in a row that bring nothing new.
class WalkGuard {
 public:
  explicit WalkGuard(std::size_t max_stalled_pages) : max_stalled_(max_stalled_pages) {}
  void restart() {
    tokens_.clear();
    stalled_ = 0;
  }
  // After a page of `url`: the token of the next page (absent at the walk's end) and whether
  // the page brought anything new. Throws sdk::DataError naming the url and the token.
  void next(const std::string& url, const std::optional<std::string>& token, bool progressed);

 private:
  std::unordered_set<std::size_t> tokens_;  // hashes: a walk of a million pages stays small
  std::size_t stalled_ = 0;
  std::size_t max_stalled_;
};

// The cursor stored by the host: the key of the last item handed over and,
// while a walk is under way, the page token of the next page.
struct Cursor {
  FeedKey key;
  std::optional<std::string> page_token;

  std::string encode() const;  // compact JSON
  // Throws sdk::DataError naming the text when it is not a cursor of ours.
  static Cursor decode(std::string_view text);
};

class EOfficeSource : public sdk::Source {
 public:
  EOfficeSource(sdk::Host& host, sdk::Settings& settings);

  void pull(std::optional<std::string_view> cursor, sdk::Page& page) override;
  std::optional<std::vector<sdk::StaffEntry>> list_staff() override;

  // Waits the adapter asked the host for, in ms (for logs and tests).
  uint64_t total_wait_ms() const { return total_wait_ms_; }

 private:
  // GET with bearer token, token renewal on 401 (once), retries on 5xx,
  // 429/503 (Retry-After), resets and timeouts. Returns any other answer.
  sdk::HttpResponse get(const std::string& url);
  const std::string& token();
  sdk::AccessToken fetch_token();
  // Sleeps before the next attempt; throws TransientError when the host
  // asks us to stop meanwhile.
  // Throws TransientError, naming the cause, when the pull's time budget ends before the next
  // attempt.
  void wait_before_retry(int attempt, const sdk::HttpResponse* response, const std::string& url,
                         const std::string& cause);
  std::string diary_url(const Cursor& cursor) const;

  sdk::Host& host_;
  SourceSettings settings_;
  Normalizer normalizer_;
  std::unique_ptr<sdk::HttpClient> http_;
  std::optional<sdk::AccessToken> token_;
  std::mt19937_64 jitter_;
  uint64_t total_wait_ms_ = 0;
  // Progress of the current walk (since the last pull that began without a
  // page token).
  int64_t pull_deadline_ms_ = std::numeric_limits<int64_t>::max();
  static constexpr int64_t kRetryWarningIntervalMs = 60000;
  int64_t next_retry_warning_ms_ = 0;
  uint64_t retries_not_warned_ = 0;
  uint64_t walk_pages_ = 0;
  WalkGuard walk_guard_;
  uint64_t walk_items_ = 0;
};

}  // namespace kpihub::eoffice
