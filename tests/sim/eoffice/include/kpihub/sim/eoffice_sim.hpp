// A simulator of the provincial E-Office (spec/sources.md, section 1): OAuth2
// token endpoint, staff list and work-diary feed over HTTP(S) on loopback,
// with deterministic data from a seed and fault injection for tests.
#pragma once

#include <kpihub/net.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

namespace kpihub::sim {

struct EOfficeSimConfig {
  uint64_t seed = 1;
  int agencies = 3;
  int staff = 60;
  int days = 5;                   // working days of `month` with diary entries
  std::string month = "2025-04";  // YYYY-MM
  std::string client_id = "kpihub";
  std::string client_secret = "sim-secret";
  // Task codes by group of staff; defaults are codes of config/catalog/province.csv.
  std::vector<std::string> leader_tasks;
  std::vector<std::string> staff_tasks;

  // Faults, each a share of API answers in [0, 1].
  double fail_5xx = 0;
  double fail_429 = 0;
  double drop = 0;
  double slow_share = 0;
  int slow_ms = 0;
  int retry_after_seconds = 1;
  int token_ttl_seconds = 3600;
  int page_token_ttl_seconds = 600;
  double malformed = 0;  // share of diary entries that are malformed (by seed)
  double live_rate = 0;  // items per second appended or edited while running

  static std::vector<std::string> default_leader_tasks();
  static std::vector<std::string> default_staff_tasks();
};

// One staff member of the simulated province.
struct SimStaff {
  std::string staff_code;  // KH-%06d
  std::string full_name;
  std::string agency_code;  // 000.00.%02d.H34
  std::string position_code;
  std::string position_title;
  bool leader = false;
  bool active = true;
  int approver = 0;  // index of the leader who approves this person's diary
};

// What the feed holds for one diary entry now (its latest revision).
struct ServedItem {
  std::string id;
  int revision = 0;
  bool deleted = false;
  std::optional<std::string> malformed_kind;  // wrong_type, bad_date, bad_utf8, missing_field
};

// The diary data: generated once from the seed, kept compactly (content is
// derived from the seed when an item is served), ordered by (updated_at, id).
class DiaryData {
 public:
  explicit DiaryData(const EOfficeSimConfig& config);

  std::size_t size() const;  // current entries (latest revisions)
  const std::vector<SimStaff>& staff() const { return staff_; }

  // Up to `page_size` items from position `from` (an index into the feed),
  // serialized; returns the JSON texts and the feed index after the last one.
  struct Slice {
    std::vector<std::string> items;  // JSON text of each item
    std::size_t next = 0;            // feed index to continue from
    bool more = false;
  };
  Slice slice(std::size_t from, std::size_t page_size) const;
  // First feed index with updated_at >= since_epoch_s.
  std::size_t lower_bound(int64_t since_epoch_s) const;

  // Appends `count` live changes (new entries, edits, deletions) stamped
  // with `now_epoch_s` (or later, to keep the feed ordered).
  void add_live(std::size_t count, int64_t now_epoch_s);

  std::vector<ServedItem> served() const;
  std::string served_json() const;
  // The staff directory in config/staff.csv's format.
  std::string directory_csv() const;

 private:
  struct Entry {
    int64_t updated_at;  // epoch seconds
    uint32_t number;     // id number; ids are WD-<year>-<number, 7 digits>
    uint32_t staff;
    uint16_t day;  // day of month of work_date
    uint8_t revision;
    uint8_t flags;  // kDeleted, kSuperseded
  };
  static constexpr uint8_t kDeleted = 1;
  static constexpr uint8_t kSuperseded = 2;

  std::string item_json(const Entry& e) const;
  std::optional<std::string> malformed_kind(uint32_t number) const;
  std::string id_of(uint32_t number) const;

  EOfficeSimConfig config_;
  int year_ = 2025;
  int month_ = 4;
  std::vector<SimStaff> staff_;
  mutable std::shared_mutex mutex_;
  std::vector<Entry> feed_;            // sorted by (updated_at, number)
  std::vector<uint32_t> position_of_;  // number -> index in feed_
  std::vector<int> workdays_;          // days of month with diary entries
  std::mt19937_64 live_rng_;
  std::size_t superseded_ = 0;
};

// The HTTP front of DiaryData. Every background thread stops in stop().
class EOfficeSimulator {
 public:
  EOfficeSimulator(EOfficeSimConfig config, net::ServerOptions server_options = {});
  ~EOfficeSimulator();
  EOfficeSimulator(const EOfficeSimulator&) = delete;
  EOfficeSimulator& operator=(const EOfficeSimulator&) = delete;

  void start();
  void stop();
  uint16_t port() const;
  std::string base_url() const;  // http(s)://127.0.0.1:PORT

  DiaryData& data() { return data_; }
  net::Reply handle(const net::Request& request);

  // Counters of what was answered, for tests.
  struct Stats {
    std::atomic<uint64_t> requests{0}, tokens{0}, unauthorized{0}, faults_5xx{0}, faults_429{0},
        drops{0}, expired_page_tokens{0};
  };
  const Stats& stats() const { return stats_; }

 private:
  net::Reply token(const net::Request& request);
  net::Reply diary(const net::Request& request);
  net::Reply staff(const net::Request& request);
  std::optional<net::Reply> fault();
  bool authorized(const net::Request& request);
  std::string make_page_token(const std::string& kind, std::size_t position);
  std::optional<std::size_t> read_page_token(const std::string& kind, const std::string& token);
  void live_loop();

  EOfficeSimConfig config_;
  net::ServerOptions server_options_;
  DiaryData data_;
  std::unique_ptr<net::HttpServer> server_;
  Stats stats_;
  std::mutex mutex_;                       // tokens_ and rng_
  std::map<std::string, int64_t> tokens_;  // access token -> expiry (ms)
  std::mt19937_64 rng_;
  uint64_t token_counter_ = 0;
  std::thread live_thread_;
  std::mutex live_mutex_;
  std::condition_variable live_cv_;
  bool live_stop_ = false;
};

// Formats epoch seconds as local time in Asia/Ho_Chi_Minh (+07:00).
std::string format_local_time(int64_t epoch_s);
// Parses an RFC 3339 timestamp to epoch seconds.
std::optional<int64_t> parse_time(const std::string& text);

}  // namespace kpihub::sim
