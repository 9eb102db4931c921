// Durable store of the simulated provincial receiver: SQLite (WAL, an fsync
// per commit) through its C API, one connection, statements prepared once. Everything one batch
// changes, including its idempotency key and the answer to replay, is written in one transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kpihub::sim::province {

// A record of a batch: views into the batch being applied (no copy per record).
struct RecordVersion {
  std::string_view record_id;
  int64_t revision = 0;
  int64_t sequence = 0;
  bool retracted = false;
  std::string_view json;
};

struct MonthVersion {
  bool agency = false;  // agency month, else staff month
  std::string month;
  std::string code;         // staff_code or agency_code
  std::string agency_code;  // for a staff month: the agency it belongs to (may be empty)
  int64_t revision = 0;
  std::string json;
};

struct StoredRecord {
  int64_t revision = 0;
  int64_t sequence = 0;
  bool retracted = false;
  std::string json;
};

struct StoredAnswer {
  std::string body_sha256;
  int status = 200;
  std::string answer;
};

// What applying one batch did: items now held at the new version, and items
// the store already held at the same or a higher one.
struct ApplyCounts {
  int64_t accepted = 0;
  int64_t duplicates = 0;
};

struct StoreCounters {
  int64_t records = 0;    // held and not withdrawn
  int64_t retracted = 0;  // withdrawn (tombstones kept so old versions cannot come back)
  int64_t staff_months = 0;
  int64_t agency_months = 0;
  int64_t revisions_received = 0;
  int64_t month_revisions_received = 0;
  int64_t batches = 0;
  int64_t duplicate_batches = 0;
  int64_t conflicts_409 = 0;
  int64_t rejected_items = 0;
};

class ProvinceStore {
 public:
  // Opens or creates the database file; throws std::runtime_error naming it.
  explicit ProvinceStore(const std::string& db_path);
  ~ProvinceStore();
  ProvinceStore(const ProvinceStore&) = delete;
  ProvinceStore& operator=(const ProvinceStore&) = delete;

  std::optional<StoredAnswer> find_answer(const std::string& idempotency_key);

  // In one transaction: keeps each record (month) where it is newer than the
  // held one, then stores `make_answer(counts)` under the key, and counts the
  // batch. Safe to call from several threads (calls are serialized).
  std::string apply_records(const std::string& idempotency_key, const std::string& body_sha256,
                            const std::vector<RecordVersion>& records, int64_t rejected,
                            const std::function<std::string(const ApplyCounts&)>& make_answer);
  std::string apply_months(const std::string& idempotency_key, const std::string& body_sha256,
                           const std::vector<MonthVersion>& months, int64_t rejected,
                           const std::function<std::string(const ApplyCounts&)>& make_answer);

  void count_duplicate_batch();
  void count_conflict();

  std::optional<StoredRecord> record(const std::string& record_id);
  // Stored summaries of a month, optionally of one agency: JSON texts.
  std::vector<std::string> staff_months(const std::string& month, const std::string& agency_code);
  std::vector<std::string> agency_months(const std::string& month, const std::string& agency_code);
  StoreCounters counters();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kpihub::sim::province
