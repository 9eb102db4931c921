// One storage engine under the record-log workload of bench/engines. Every engine keeps
// the same four things, in its own way:
//   log        accepted revisions, appended under an increasing sequence number
//   latest     record_id -> (highest stored revision, its sequence number): deduplication
//   staff-day  (staff, day, record) -> sequence number of the current revision
//   meta       the source cursor and the page's quarantine entries
// and commits each page atomically and durably (it survives kill -9 and power loss).
#pragma once

#include "workload.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kpihub::bench::engines {

struct EngineOptions {
  std::string dir;            // the engine's folder (created empty)
  std::size_t cache_mb = 32;  // the engine's memory budget for caches and write buffers
};

class Engine {
 public:
  virtual ~Engine() = default;
  // The settings that matter for the figures, for the report.
  virtual std::string settings() const = 0;
  // Looks up each record's stored revision, appends those above it to the log and points
  // `latest` and `staff-day` at them; stores the quarantine entries and the cursor; one
  // durable commit. Returns the records appended.
  virtual std::size_t commit_page(const Page& page) = 0;
  // Finishes what the engine does after commits (memtable flushes and compactions, WAL
  // checkpoints), so a phase's figures include the work its writes caused.
  virtual void settle() = 0;
  // The current records of one staff member's day.
  virtual ReadTotals read_staff_day(std::string_view staff, std::uint8_t day) = 0;
  // Every current record, in staff-day order.
  virtual ReadTotals read_month_by_staff() = 0;
  // Where the engine's own memory is, as far as it tells (bytes by name); empty if it does not.
  virtual std::vector<std::pair<std::string, std::uint64_t>> memory() const { return {}; }
};

std::unique_ptr<Engine> open_sqlite(const EngineOptions& options, bool synchronous_full,
                                    bool latest_by_text);
struct RocksVariant {
  bool bloom_filter = true;  // a whole-key bloom filter on `latest`
  bool compression = true;   // LZ4 (else Snappy, else none) on every family
  // `latest` keyed by the big-endian 64-bit hash of the record id, the id kept in the value
  // and compared (8-byte keys: cheaper memtable inserts); else keyed by the record id.
  bool hash_key = true;
  // `staff_day` holds the record itself, not its sequence number: a staff-day or a month
  // is read in one scan, at the price of writing each record twice.
  bool clustered = false;
};
std::unique_ptr<Engine> open_rocksdb(const EngineOptions& options, const RocksVariant& variant);
std::unique_ptr<Engine> open_lmdb(const EngineOptions& options);

// The value stored in every engine's log: [u32 revision][u16 id length][record_id][body].
std::string log_value(const Record& r);
ReadTotals read_log_value(std::string_view value);
// The staff-day key of RocksDB and LMDB: [u8 length][staff][u8 day][u64 big-endian id hash],
// so one staff member's month is contiguous and ordered by day.
std::string staff_day_key(std::string_view staff, std::uint8_t day, std::uint64_t hash);
std::string staff_day_prefix(std::string_view staff, std::uint8_t day);
void put_big_endian(std::string& out, std::uint64_t v);
std::uint64_t get_big_endian(std::string_view in);

}  // namespace kpihub::bench::engines
